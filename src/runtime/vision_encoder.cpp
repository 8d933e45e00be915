#include "runtime/vision_encoder.h"

#include <string>

#include "export/package_names.h"
#include "q3vl/error.h"

namespace q3vl {
namespace {

// Far beyond any real input (a 16k x 16k image has 1M patches) yet small enough that N x N
// attention sizes and index arithmetic cannot overflow.
constexpr std::int64_t kMaxPatchesPerCall = 1 << 20;
constexpr std::int64_t kMaxGridSide = 1 << 14;

}  // namespace

void validate_grids(std::span<const GridThw> grids, std::int64_t patch_rows) {
  if (grids.empty()) throw InvalidInput("image_grid_thw is empty");
  std::int64_t total = 0;
  for (std::size_t i = 0; i < grids.size(); ++i) {
    const GridThw& g = grids[i];
    const std::string where = "image_grid_thw row " + std::to_string(i) + " (" + std::to_string(g.t) + ", " +
                              std::to_string(g.h) + ", " + std::to_string(g.w) + ")";
    if (g.t <= 0 || g.h <= 0 || g.w <= 0) throw InvalidInput(where + ": every dimension must be positive");
    if (g.h % 2 != 0 || g.w % 2 != 0) throw InvalidInput(where + ": h and w must be even (2x2 patch merging)");
    if (g.h > kMaxGridSide || g.w > kMaxGridSide || g.t > kMaxGridSide) throw InvalidInput(where + ": too large");
    total += g.patches();
    if (total > kMaxPatchesPerCall) {
      throw InvalidInput("image_grid_thw: more than " + std::to_string(kMaxPatchesPerCall) + " patches in one call");
    }
  }
  if (total != patch_rows) {
    throw InvalidInput("image_grid_thw describes " + std::to_string(total) + " patches but pixel_values has " +
                       std::to_string(patch_rows) + " rows");
  }
}

VisionEncoder::VisionEncoder(OnnxEnvironment& environment, const std::filesystem::path& model, const ModelConfig& config,
                             const SessionOptions& options)
    : session_(environment, model, options), config_(config) {}

VisualFeatures VisionEncoder::encode(std::span<const float> pixel_values, std::span<const GridThw> grids) {
  const std::int64_t width = config_.vision.patch_input_size();
  if (pixel_values.size() % static_cast<std::size_t>(width) != 0) {
    throw InvalidInput("pixel_values has " + std::to_string(pixel_values.size()) + " values, not a multiple of " +
                       std::to_string(width));
  }
  const std::int64_t rows = static_cast<std::int64_t>(pixel_values.size()) / width;
  validate_grids(grids, rows);
  std::vector<std::int64_t> grid_values;
  for (const GridThw& g : grids) grid_values.insert(grid_values.end(), {g.t, g.h, g.w});
  std::vector<Ort::Value> inputs;
  inputs.push_back(tensor_view(std::span<float>(const_cast<float*>(pixel_values.data()), pixel_values.size()), {rows, width}));
  inputs.push_back(tensor_view(grid_values, {static_cast<std::int64_t>(grids.size()), 3}));
  auto outputs = session_.run({package::kPixelValues, package::kImageGridThw}, inputs, {package::kImageFeatures});
  const std::vector<std::int64_t> shape = tensor_shape(outputs[0]);
  VisualFeatures features;
  features.tokens = shape.at(0);
  features.width = shape.at(1);
  const float* data = outputs[0].GetTensorData<float>();
  features.data.assign(data, data + features.tokens * features.width);
  return features;
}

}  // namespace q3vl
