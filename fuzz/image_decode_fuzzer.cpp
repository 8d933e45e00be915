// libFuzzer target for the image decoders (JPEG, PNG, WebP, BMP, GIF, EXIF orientation) and the
// resize kernel: any byte string must either decode into a consistent image or be rejected with
// q3vl::InvalidInput / q3vl::Unsupported; anything else (a crash, a sanitizer report, another
// exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "q3vl/error.h"
#include "q3vl/image.h"
#include "media/image_preprocess.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Small limits keep single inputs within libFuzzer's memory and time budgets.
  q3vl::ImageLimits limits;
  limits.max_pixels = 1 << 22;
  limits.max_file_bytes = 1 << 24;
  try {
    const q3vl::RgbImage image = q3vl::decode_image_memory({data, size}, "fuzz input", limits);
    if (image.width <= 0 || image.height <= 0 ||
        image.pixels.size() != static_cast<std::size_t>(image.width * image.height * 3)) {
      __builtin_trap();
    }
    // Small images also go through the resize kernel, to sizes taken from the input.
    if (size >= 2 && image.width * image.height <= 4096) {
      const std::int64_t height = 1 + data[0] % 97, width = 1 + data[size - 1] % 97;
      const q3vl::RgbImage resized = q3vl::resize_bicubic_antialias(image, height, width);
      if (resized.pixels.size() != static_cast<std::size_t>(height * width * 3)) __builtin_trap();
    }
  } catch (const q3vl::InvalidInput&) {
  } catch (const q3vl::Unsupported&) {
  }
  return 0;
}
