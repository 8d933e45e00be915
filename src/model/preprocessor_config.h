#pragma once
// The image pipeline settings of a checkpoint's preprocessor_config.json (pixel budget,
// normalization): read in one place for the exporter (processor_config.json) and the runtime.
#include <array>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "util/json_fields.h"

namespace q3vl {

struct PreprocessOptions {
  std::int64_t min_pixels = 65536, max_pixels = 16777216;
  std::array<float, 3> mean = {0.5f, 0.5f, 0.5f}, std = {0.5f, 0.5f, 0.5f};
  double rescale_factor = 1.0 / 255.0;  // HF folds it into mean and std (mean / rescale_factor, ...)
};

// The video pipeline of a checkpoint's video_preprocessor_config.json (transformers'
// Qwen3VLVideoProcessor): the pixel budget is for the whole clip (sampled frames x height x width,
// frames rounded up to pairs), frames are sampled at `fps` of the clip's time, at least min_frames
// and at most max_frames. Defaults: the class's own values.
struct VideoPreprocessOptions {
  PreprocessOptions pixels{.min_pixels = 128 * 32 * 32, .max_pixels = 768 * 32 * 32};
  double fps = 2;
  std::int64_t min_frames = 4, max_frames = 768;
};

// Reads a preprocessor_config.json: size.shortest_edge / size.longest_edge (or a top-level
// min_pixels / max_pixels, which take precedence as in HF), image_mean, image_std, rescale_factor.
// Missing keys keep the defaults above. Throws InvalidInput for malformed values and Unsupported
// for a pipeline other than HF's default (resize/rescale/normalize off, a resample other than bicubic).
PreprocessOptions read_preprocess_options(const nlohmann::json& preprocessor_config,
                                          const std::string& source = "preprocessor_config.json");
// The same inside another file (the package manifest): errors name the field path.
PreprocessOptions read_preprocess_options(const JsonField& preprocessor_config);

// Reads a video_preprocessor_config.json: the same keys as above (size is the clip's budget) plus
// fps, min_frames, max_frames; Unsupported for do_sample_frames = false (HF then takes every frame
// of the file, which q3vl does not do).
VideoPreprocessOptions read_video_preprocess_options(const JsonField& video_preprocessor_config);

}  // namespace q3vl
