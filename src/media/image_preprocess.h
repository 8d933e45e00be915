#pragma once
// Image -> pixel_values + image_grid_thw, bit-identical to transformers' Qwen2VLImageProcessor
// (torchvision backend, the class Qwen3-VL's "Qwen2VLImageProcessorFast" maps to) on CPU, docs/model-math.md §3:
// smart_resize, torch's uint8 antialiased bicubic resize, the fused rescale + normalize in float32,
// the frame repeated to the temporal patch size, and patches in HF's 2x2-merge-block order.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/config.h"
#include "model/preprocessor_config.h"
#include "q3vl/image.h"
#include "math/grid.h"

namespace q3vl {

// HF's smart_resize: (height, width) rounded to multiples of `factor` (half to even), then scaled
// into [min_pixels, max_pixels] keeping the aspect ratio, in double arithmetic like Python's.
// Throws InvalidInput for a non-positive side or an aspect ratio above 200 (HF's ValueError).
std::pair<std::int64_t, std::int64_t> smart_resize(std::int64_t height, std::int64_t width, std::int64_t factor,
                                                   std::int64_t min_pixels, std::int64_t max_pixels);

// smart_resize's arithmetic, shared by images (one frame) and clips (the video processor's form):
// sides rounded to `factor`, then scaled so that frames-rounded-up-to-`temporal` x height x width
// fits [min_pixels, max_pixels]. Callers check the sides and the aspect ratio first.
std::pair<std::int64_t, std::int64_t> fit_pixel_budget(std::int64_t height, std::int64_t width, std::int64_t factor,
                                                       std::int64_t min_pixels, std::int64_t max_pixels,
                                                       std::int64_t frames = 1, std::int64_t temporal = 1);

// torch.nn.functional.interpolate(uint8, mode="bicubic", antialias=True, align_corners=False) on
// CPU, which torchvision's resize uses for uint8 images: separable fixed-point filtering with int16
// weights, horizontal pass first into a uint8 buffer. Bit-exact with torch.
RgbImage resize_bicubic_antialias(const RgbImage& image, std::int64_t height, std::int64_t width);

// Frames already at the grid's size (grid.h * patch x grid.w * patch) cut into patch rows, in the
// order the exported vision graph derives from the grid: frame pair t fills the temporal slots of
// rows [t*h*w, (t+1)*h*w). Slots past the last frame repeat it: HF pads an odd clip with its last
// frame, and an image is one frame repeated. Values are HF's fused rescale + normalize in float32.
std::vector<float> patchify_frames(std::span<const RgbImage* const> frames, const GridThw& grid, const VisionConfig& vision,
                                   const PreprocessOptions& normalization);

struct ImageInput {
  std::vector<float> pixel_values;  // [grid.patches(), C*Tp*P*P] in HF order
  GridThw grid;
};

// One image through HF's processor. Resizes only when smart_resize changes the size.
ImageInput preprocess_image(const RgbImage& image, const ModelConfig& config, const PreprocessOptions& options);

}  // namespace q3vl
