#include "media/image_preprocess.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "math/vision_geometry.h"
#include "q3vl/error.h"

namespace q3vl {
namespace {

// Width x height, as every image message says it.
std::string size_text(std::int64_t height, std::int64_t width) {
  return std::to_string(width) + "x" + std::to_string(height);
}

// Keys' bicubic kernel with a = -0.5 (PIL's choice, which torch uses when antialiasing), written
// with torch's operation order so every double rounds the same way.
double bicubic_filter(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0;
}

// Fixed-point filter taps for one axis, as torch's _compute_index_ranges_int16_weights builds them:
// output i reads input[start[i] .. start[i] + count[i]) with int16 weights scaled by 2^precision.
struct AxisFilter {
  std::int64_t taps = 0;  // weights per output (stride of `weights`)
  int precision = 0;
  std::vector<std::int64_t> start, count;
  std::vector<std::int16_t> weights;
};

AxisFilter make_axis_filter(std::int64_t in_size, std::int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  // Downscaling widens the kernel by the scale (that is the antialiasing); interp_size 4 halved.
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0;
  const double inverse_scale = scale >= 1.0 ? 1.0 / scale : 1.0;
  AxisFilter filter;
  filter.taps = static_cast<std::int64_t>(std::ceil(support)) * 2 + 1;
  filter.start.resize(static_cast<std::size_t>(out_size));
  filter.count.resize(static_cast<std::size_t>(out_size));
  std::vector<double> weights(static_cast<std::size_t>(out_size * filter.taps), 0.0);
  double max_weight = 0.0;
  for (std::int64_t i = 0; i < out_size; ++i) {
    const double center = scale * (static_cast<double>(i) + 0.5);
    const std::int64_t start = std::max(static_cast<std::int64_t>(center - support + 0.5), std::int64_t{0});
    // torch clamps the count to the tap budget (it can exceed it by one through rounding).
    const std::int64_t count =
        std::clamp(std::min(static_cast<std::int64_t>(center + support + 0.5), in_size) - start, std::int64_t{0},
                   filter.taps);
    double* w = weights.data() + i * filter.taps;
    double total = 0.0;
    for (std::int64_t j = 0; j < count; ++j) {
      w[j] = bicubic_filter((static_cast<double>(j + start) - center + 0.5) * inverse_scale);
      total += w[j];
    }
    if (total != 0.0) {
      for (std::int64_t j = 0; j < count; ++j) {
        w[j] /= total;
        max_weight = std::max(max_weight, w[j]);
      }
    }
    filter.start[static_cast<std::size_t>(i)] = start;
    filter.count[static_cast<std::size_t>(i)] = count;
  }
  // The largest precision (up to 22 bits) at which the largest weight still fits in int16.
  int precision = 0;
  for (; precision < 22; ++precision) {
    const int next = static_cast<int>(0.5 + max_weight * static_cast<double>(1 << (precision + 1)));
    if (next >= (1 << 15)) break;
  }
  filter.precision = precision;
  filter.weights.resize(weights.size());
  for (std::size_t k = 0; k < weights.size(); ++k) {
    const double v = weights[k] * static_cast<double>(1 << precision);
    filter.weights[k] = static_cast<std::int16_t>(v < 0 ? static_cast<int>(-0.5 + v) : static_cast<int>(0.5 + v));
  }
  return filter;
}

std::uint8_t clamp_to_byte(std::int32_t value) { return static_cast<std::uint8_t>(std::clamp(value, 0, 255)); }

// One separable pass. `stride` is the distance between neighbouring taps in the input (3 for a
// horizontal pass over HWC pixels, 3 * width for a vertical one); `lines` x `line_values` outputs
// per position along the axis.
void filter_axis(const std::uint8_t* in, std::uint8_t* out, const AxisFilter& filter, std::int64_t out_size,
                 std::int64_t lines, std::int64_t in_line_stride, std::int64_t out_line_stride, std::int64_t tap_stride,
                 std::int64_t line_values) {
  const std::int32_t rounding = std::int32_t{1} << (filter.precision - 1);
  for (std::int64_t line = 0; line < lines; ++line) {
    const std::uint8_t* in_line = in + line * in_line_stride;
    std::uint8_t* out_line = out + line * out_line_stride;
    for (std::int64_t i = 0; i < out_size; ++i) {
      const std::int16_t* w = filter.weights.data() + i * filter.taps;
      const std::uint8_t* first = in_line + filter.start[static_cast<std::size_t>(i)] * tap_stride;
      const std::int64_t count = filter.count[static_cast<std::size_t>(i)];
      for (std::int64_t v = 0; v < line_values; ++v) {
        std::int32_t sum = rounding;
        for (std::int64_t j = 0; j < count; ++j) sum += std::int32_t{w[j]} * first[j * tap_stride + v];
        out_line[i * line_values + v] = clamp_to_byte(sum >> filter.precision);  // arithmetic shift, as torch
      }
    }
  }
}

}  // namespace

std::pair<std::int64_t, std::int64_t> smart_resize(std::int64_t height, std::int64_t width, std::int64_t factor,
                                                   std::int64_t min_pixels, std::int64_t max_pixels) {
  if (height <= 0 || width <= 0) throw InvalidInput("image of " + size_text(height, width) + " pixels: sides must be positive");
  if (factor <= 0) throw InvalidInput("smart_resize: factor must be positive, not " + std::to_string(factor));
  const auto h = static_cast<double>(height), w = static_cast<double>(width);
  if (std::max(h, w) / std::min(h, w) > 200) {
    throw InvalidInput("image of " + size_text(height, width) +
                       " pixels: the aspect ratio must be at most 200 (Qwen's smart_resize rejects it)");
  }
  return fit_pixel_budget(height, width, factor, min_pixels, max_pixels);
}

std::pair<std::int64_t, std::int64_t> fit_pixel_budget(std::int64_t height, std::int64_t width, std::int64_t factor,
                                                       std::int64_t min_pixels, std::int64_t max_pixels, std::int64_t frames,
                                                       std::int64_t temporal) {
  const auto h = static_cast<double>(height), w = static_cast<double>(width), f = static_cast<double>(factor);
  const double n = static_cast<double>(frames);  // HF uses the unpadded count inside beta
  // Python's round() is half to even: nearbyint in the default rounding mode.
  std::int64_t h_bar = static_cast<std::int64_t>(std::nearbyint(h / f)) * factor;
  std::int64_t w_bar = static_cast<std::int64_t>(std::nearbyint(w / f)) * factor;
  const std::int64_t t_bar = (frames + temporal - 1) / temporal * temporal;
  if (t_bar * h_bar * w_bar > max_pixels) {
    const double beta = std::sqrt(n * h * w / static_cast<double>(max_pixels));
    h_bar = std::max(factor, static_cast<std::int64_t>(std::floor(h / beta / f)) * factor);
    w_bar = std::max(factor, static_cast<std::int64_t>(std::floor(w / beta / f)) * factor);
  } else if (t_bar * h_bar * w_bar < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / (n * h * w));
    h_bar = static_cast<std::int64_t>(std::ceil(h * beta / f)) * factor;
    w_bar = static_cast<std::int64_t>(std::ceil(w * beta / f)) * factor;
  }
  return {h_bar, w_bar};
}

RgbImage resize_bicubic_antialias(const RgbImage& image, std::int64_t height, std::int64_t width) {
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<std::size_t>(image.width * image.height * 3)) {
    throw InvalidInput("resize: the input image is " + size_text(image.height, image.width) + " with " +
                       std::to_string(image.pixels.size()) + " bytes of pixels");
  }
  if (height <= 0 || width <= 0) throw InvalidInput("resize: target size " + size_text(height, width) + " is empty");
  const std::int64_t in_w = image.width, in_h = image.height;
  RgbImage current = image;
  if (width != in_w) {  // horizontal pass, every input row
    RgbImage next;
    next.width = width;
    next.height = in_h;
    next.pixels.resize(static_cast<std::size_t>(width * in_h * 3));
    filter_axis(current.pixels.data(), next.pixels.data(), make_axis_filter(in_w, width), width, in_h, in_w * 3,
                width * 3, 3, 3);
    current = std::move(next);
  }
  if (height != in_h) {  // vertical pass over the (possibly resized) rows
    RgbImage next;
    next.width = width;
    next.height = height;
    next.pixels.resize(static_cast<std::size_t>(width * height * 3));
    // One "line" per output row position; taps step by a whole row; all width*3 values per output.
    filter_axis(current.pixels.data(), next.pixels.data(), make_axis_filter(in_h, height), height, 1, 0, 0,
                width * 3, width * 3);
    current = std::move(next);
  }
  return current;
}

namespace {

// The exported vision graph assumes RGB input and 2x2 merging; the image must hold its pixels.
void check_preprocess_input(const RgbImage& image, const VisionConfig& vision) {
  const std::int64_t patch = vision.patch_size, merge = vision.spatial_merge_size;
  const std::int64_t frames = vision.temporal_patch_size, channels = vision.in_channels;
  if (merge != 2 || channels != 3 || patch <= 0 || frames <= 0) {
    throw Unsupported("image preprocessing supports RGB input with 2x2 patch merging, not in_channels " +
                      std::to_string(channels) + " / spatial_merge_size " + std::to_string(merge));
  }
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<std::size_t>(image.width * image.height * 3)) {
    throw InvalidInput("image of " + size_text(image.height, image.width) + " pixels with " +
                       std::to_string(image.pixels.size()) + " bytes of RGB data");
  }
}

// smart_resize's (height, width), its errors naming which of the user's images it was.
std::pair<std::int64_t, std::int64_t> target_size(const RgbImage& image, std::int64_t factor,
                                                  const PreprocessOptions& options) {
  try {
    return smart_resize(image.height, image.width, factor, options.min_pixels, options.max_pixels);
  } catch (const InvalidInput& e) {
    if (image.source.empty()) throw;
    throw InvalidInput(image.source + ": " + e.what());
  }
}

// HF folds rescale into normalize: mean' = mean * (1 / rescale_factor), std' likewise, in float32,
// then (x - mean') / std' in float32. One lookup table per channel holds the 256 results.
using NormalizeTables = std::array<std::array<float, 256>, 3>;

NormalizeTables normalize_tables(const PreprocessOptions& options) {
  const auto inverse_rescale = static_cast<float>(1.0 / options.rescale_factor);
  NormalizeTables normalized{};
  for (std::size_t c = 0; c < 3; ++c) {
    const float mean = options.mean[c] * inverse_rescale;
    const float deviation = options.std[c] * inverse_rescale;
    for (int v = 0; v < 256; ++v) normalized[c][static_cast<std::size_t>(v)] = (static_cast<float>(v) - mean) / deviation;
  }
  return normalized;
}

}  // namespace

std::vector<float> patchify_frames(std::span<const RgbImage* const> frames, const GridThw& grid, const VisionConfig& vision,
                                   const PreprocessOptions& normalization) {
  const std::int64_t patch = vision.patch_size;
  const std::int64_t slots = vision.temporal_patch_size, channels = vision.in_channels;
  const std::int64_t height = grid.h * patch, width = grid.w * patch;
  if (frames.empty() || static_cast<std::int64_t>(frames.size()) > grid.t * slots) {
    throw InvalidInput("patchify: " + std::to_string(frames.size()) + " frames for a grid of " + std::to_string(grid.t) +
                       " x " + std::to_string(slots) + " temporal slots");
  }
  for (const RgbImage* frame : frames) {
    if (frame->height != height || frame->width != width || frame->pixels.size() != static_cast<std::size_t>(height * width * 3)) {
      throw InvalidInput("patchify: a frame of " + size_text(frame->height, frame->width) + " for a grid of " +
                         size_text(height, width));
    }
  }
  const NormalizeTables normalized = normalize_tables(normalization);
  const std::int64_t row_size = channels * slots * patch * patch;
  const std::int64_t rows_per_pair = grid.h * grid.w;
  std::vector<float> out(static_cast<std::size_t>(grid.patches() * row_size));
  vision_geometry::ScalarArith arith;
  for (std::int64_t pair = 0; pair < grid.t; ++pair) {
    for (std::int64_t index = 0; index < rows_per_pair; ++index) {
      const auto [patch_row, patch_col] = vision_geometry::patch_row_col(arith, index, grid.w);
      float* row = out.data() + (pair * rows_per_pair + index) * row_size;
      for (std::int64_t c = 0; c < channels; ++c) {
        const auto& table = normalized[static_cast<std::size_t>(c)];
        for (std::int64_t t = 0; t < slots; ++t) {
          // Past the last frame, the last one again (HF pads a clip, and an image is one frame).
          const std::size_t f = std::min(static_cast<std::size_t>(pair * slots + t), frames.size() - 1);
          const std::uint8_t* pixels = frames[f]->pixels.data();
          float* block = row + (c * slots + t) * patch * patch;
          for (std::int64_t py = 0; py < patch; ++py) {
            const std::uint8_t* src = pixels + ((patch_row * patch + py) * width + patch_col * patch) * 3 + c;
            for (std::int64_t px = 0; px < patch; ++px) block[py * patch + px] = table[src[px * 3]];
          }
        }
      }
    }
  }
  return out;
}

ImageInput preprocess_image(const RgbImage& image, const ModelConfig& config, const PreprocessOptions& options) {
  const VisionConfig& vision = config.vision;
  check_preprocess_input(image, vision);
  const auto [height, width] = target_size(image, vision.patch_size * vision.spatial_merge_size, options);
  RgbImage resized;
  const bool same_size = height == image.height && width == image.width;  // torchvision skips the resize
  if (!same_size) resized = resize_bicubic_antialias(image, height, width);
  ImageInput out;
  out.grid = {1, height / vision.patch_size, width / vision.patch_size};
  const RgbImage* frame = same_size ? &image : &resized;
  out.pixel_values = patchify_frames(std::span<const RgbImage* const>(&frame, 1), out.grid, vision, options);
  return out;
}

}  // namespace q3vl
