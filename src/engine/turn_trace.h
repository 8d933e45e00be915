#pragma once
// Everything one conversation turn computed, for `q3vl run --dump`: written as .npy files that
// compare directly with another implementation's tensors.
#include <cstdint>
#include <filesystem>
#include <vector>

#include "engine/vision_encoder.h"
#include "math/grid.h"
#include "model/config.h"

namespace q3vl {

struct TurnTrace {
  std::vector<std::int64_t> prompt_ids;      // the whole conversation's tokens for this turn
  std::vector<std::int64_t> input_ids;       // the tokens fed in this turn's prefill (after the cache)
  std::vector<float> pixel_values;           // [patches, C*Tp*P*P], images and videos in turn order
  std::vector<GridThw> grids;                // one per item
  std::vector<bool> is_video;                // per item
  std::vector<std::int64_t> frame_indices;   // the videos' sampled frames, video after video
  std::vector<double> timestamps;            // the videos' frame-pair times, video after video
  std::vector<std::int64_t> position_ids;    // [3, S]
  std::int64_t rope_delta = 0;
  VisualFeatures features;                   // [tokens, (1+K)H]
  std::vector<float> prefill_logits;         // last position [V]
  std::vector<std::int64_t> output_ids;

  // Writes HF's names: images as pixel_values / image_grid_thw / image_features /
  // deepstack_features, videos as pixel_values_videos / video_grid_thw / video_features /
  // video_deepstack_features plus frame_indices and timestamps.
  // Staged and swapped in whole (see util/output_dir.h); refuses a folder that is not an earlier dump.
  void write(const std::filesystem::path& dir, const ModelConfig& config) const;
};

}  // namespace q3vl
