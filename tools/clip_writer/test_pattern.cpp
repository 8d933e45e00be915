#include "test_pattern.h"

#include <algorithm>

namespace q3vl::clip {

RgbImage test_pattern(std::int64_t width, std::int64_t height, std::int64_t index) {
  RgbImage image;
  image.width = width;
  image.height = height;
  image.source = "test pattern frame " + std::to_string(index);
  image.pixels.resize(static_cast<std::size_t>(width * height * 3));
  // Levels stay within [40, 216]: no clipping anywhere in a limited-range YUV round trip.
  const std::int64_t side = std::max<std::int64_t>(2, std::min(width, height) / 4);
  const std::int64_t square_x = (index * 3) % std::max<std::int64_t>(1, width - side);
  const std::int64_t square_y = (index * 2) % std::max<std::int64_t>(1, height - side);
  for (std::int64_t y = 0; y < height; ++y) {
    for (std::int64_t x = 0; x < width; ++x) {
      std::uint8_t* pixel = image.pixels.data() + (y * width + x) * 3;
      if (x >= square_x && x < square_x + side && y >= square_y && y < square_y + side) {
        pixel[0] = 210, pixel[1] = 50, pixel[2] = 70;
        continue;
      }
      // A diagonal triangle wave that slides 16 steps per frame: no edges, but every frame differs.
      const std::int64_t phase = (x + y + 16 * index) % 256;
      const std::int64_t wave = phase < 128 ? phase : 255 - phase;
      pixel[0] = static_cast<std::uint8_t>(40 + x * 176 / std::max<std::int64_t>(1, width - 1));
      pixel[1] = static_cast<std::uint8_t>(40 + y * 176 / std::max<std::int64_t>(1, height - 1));
      pixel[2] = static_cast<std::uint8_t>(40 + wave * 176 / 127);
    }
  }
  return image;
}

}  // namespace q3vl::clip
