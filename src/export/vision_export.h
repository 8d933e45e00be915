#pragma once
// vision.onnx: pixel_values [N, C*Tp*P*P] + image_grid_thw [n, 3] -> image_features
// [N/4, (1+K)*H]: the final merger's output followed by the K DeepStack mergers' outputs, side by
// side (the package's wide visual channel, see docs/package.md). Everything derived from the grid
// (position-embedding interpolation, 2-D rotary angles, attention segments) is computed in-graph.
#include <filesystem>

#include "export/weights.h"
#include "model/checkpoint.h"

namespace q3vl {

struct VisionExportOptions {
  LinearOptions linear;  // format of the ViT and merger linear layers
  // Compute in float16 (weights, activations, attention); inputs and outputs stay float32 and
  // the grid geometry is computed in float32, then rounded.
  bool fp16 = false;
};

// Writes `dir/vision.onnx` and `dir/vision.onnx.data`.
void export_vision(const Checkpoint& checkpoint, const VisionExportOptions& options, const std::filesystem::path& dir,
                   ProgressBar* progress = nullptr);

}  // namespace q3vl
