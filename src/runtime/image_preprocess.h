#pragma once
// Image -> pixel_values + image_grid_thw, bit-identical to transformers' Qwen2VLImageProcessor
// (torchvision backend, the class Qwen3-VL's "Qwen2VLImageProcessorFast" maps to) on CPU, spec §3:
// smart_resize, torch's uint8 antialiased bicubic resize, the fused rescale + normalize in float32,
// the frame repeated to the temporal patch size, and patches in HF's 2x2-merge-block order.
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/config.h"
#include "runtime/image.h"
#include "runtime/vision_encoder.h"

namespace q3vl {

// HF's smart_resize: (height, width) rounded to multiples of `factor` (half to even), then scaled
// into [min_pixels, max_pixels] keeping the aspect ratio, in double arithmetic like Python's.
// Throws InvalidInput for a non-positive side or an aspect ratio above 200 (HF's ValueError).
std::pair<std::int64_t, std::int64_t> smart_resize(std::int64_t height, std::int64_t width, std::int64_t factor,
                                                   std::int64_t min_pixels, std::int64_t max_pixels);

// torch.nn.functional.interpolate(uint8, mode="bicubic", antialias=True, align_corners=False) on
// CPU, which torchvision's resize uses for uint8 images: separable fixed-point filtering with int16
// weights, horizontal pass first into a uint8 buffer. Bit-exact with torch.
RgbImage resize_bicubic_antialias(const RgbImage& image, std::int64_t height, std::int64_t width);

struct PreprocessOptions {
  std::int64_t min_pixels = 65536, max_pixels = 16777216;
  std::array<float, 3> mean = {0.5f, 0.5f, 0.5f}, std = {0.5f, 0.5f, 0.5f};
  double rescale_factor = 1.0 / 255.0;  // HF folds it into mean and std (mean / rescale_factor, ...)
};

// Reads a preprocessor_config.json: size.shortest_edge / size.longest_edge (or a top-level
// min_pixels / max_pixels, which take precedence as in HF), image_mean, image_std, rescale_factor.
// Missing keys keep the defaults above. Throws InvalidInput for malformed values and Unsupported
// for a pipeline other than HF's default (resize/rescale/normalize off, a resample other than bicubic).
PreprocessOptions read_preprocess_options(const nlohmann::json& preprocessor_config,
                                          const std::string& source = "preprocessor_config.json");

struct ImageInput {
  std::vector<float> pixel_values;  // [grid.patches(), C*Tp*P*P] in HF order
  GridThw grid;
};

// One image through HF's processor. Resizes only when smart_resize changes the size.
ImageInput preprocess_image(const RgbImage& image, const ModelConfig& config, const PreprocessOptions& options);

}  // namespace q3vl
