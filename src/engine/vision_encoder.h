#pragma once
// Runs vision.onnx: flattened patches + their grids -> merged visual features and DeepStack
// features. Grids are checked against the config and the patch count before ONNX Runtime sees
// them, so a crafted grid gives a clear error instead of an out-of-range read.
#include <cstdint>
#include <string>
#include <span>
#include <vector>

#include "math/grid.h"
#include "model/config.h"
#include "ort/onnx_session.h"

namespace q3vl {

// Throws InvalidInput unless every grid is positive, even in h and w, not absurdly large, and the
// grids add up to `patch_rows`.
void validate_grids(std::span<const GridThw> grids, std::int64_t patch_rows);

struct VisualFeatures {
  std::int64_t tokens = 0;   // rows: one per merged 2x2 block
  std::int64_t width = 0;    // (1 + K) * H: merged features then K DeepStack levels
  std::vector<float> data;   // [tokens, width]
};

// The wide rows taken apart into HF's two outputs (merged features [tokens, H], DeepStack levels
// [K, tokens, H]) and put back together: the one place that knows the column layout besides the
// graphs that produce and consume it.
struct SplitVisualFeatures {
  std::vector<float> merged;
  std::vector<float> deepstack;
  std::int64_t levels = 0;
};
SplitVisualFeatures split_visual_features(const VisualFeatures& features, std::int64_t hidden_size);
VisualFeatures join_visual_features(std::span<const float> merged, std::span<const float> deepstack,
                                    std::int64_t hidden_size);

// The most memory one vision.onnx call over `patches` patches (all its images together) needs for
// its activations, in bytes, with a margin. Attention runs per item without a mask (flash attention
// on the CPU), so this is linear in the patches.
std::uint64_t estimate_vision_peak_bytes(const ModelConfig& config, std::int64_t patches);

// The default vision memory budget: Q3VL_MAX_VISION_MEMORY_MB if set (InvalidInput if it is not
// a positive integer), else 3/4 of physical memory.
std::uint64_t default_vision_memory_budget_bytes();

class VisionEncoder {
 public:
  // `options`' memory settings are the encoder's own: an arena shrunk after each run.
  VisionEncoder(OnnxEnvironment& environment, const std::filesystem::path& model, const ModelConfig& config,
                const SessionOptions& options = {});

  // pixel_values: [rows, C*Tp*P*P] in HF patch order.
  // Thread-safe.
  VisualFeatures encode(std::span<const float> pixel_values, std::span<const GridThw> grids) const;

  const OnnxSession& session() const { return session_; }

 private:
  OnnxSession session_;
  ModelConfig config_;
};

}  // namespace q3vl
