#include "engine/vision_encoder.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string>

#include "package/format.h"
#include "q3vl/error.h"

namespace q3vl {
namespace {

// Far beyond any real input (a 16k x 16k image has 1M patches) yet small enough that N x N
// attention sizes and index arithmetic cannot overflow.
constexpr std::int64_t kMaxPatchesPerCall = 1 << 20;
constexpr std::int64_t kMaxGridSide = 1 << 14;

}  // namespace

std::uint64_t estimate_vision_peak_bytes(const ModelConfig& config, std::int64_t patches) {
  const VisionConfig& v = config.vision;
  const auto n = static_cast<double>(std::max<std::int64_t>(patches, 0));
  constexpr double kFloat = 4;
  // Per patch at the pass's peak: the input; the residual stream, the DeepStack levels held and
  // attention's q, k, v with MultiHeadAttention's head-major copies and output (about 11 hidden
  // widths); or, in vision.onnx's MLP, its up projection and FastGelu's scratch copy of it. The
  // flash-attention tiles per thread are a few MB. The 2B's int8 encoder measured 68 KB a patch
  // through ONNX Runtime's arena, which the margin covers.
  const double D = static_cast<double>(v.hidden_size);
  const double linear = n * kFloat *
                        (static_cast<double>(v.patch_input_size()) + 3.0 * D + std::max(8.0 * D, 2.0 * static_cast<double>(v.intermediate_size)));
  constexpr double kTiles = 64.0 * (1 << 20);
  constexpr double kMargin = 1.4;  // arena fragmentation, fused-kernel scratch
  return static_cast<std::uint64_t>(std::min((linear + kTiles) * kMargin, 1.8e19));
}

std::uint64_t default_vision_memory_budget_bytes() {
  if (const char* env = std::getenv("Q3VL_MAX_VISION_MEMORY_MB"); env != nullptr && *env != '\0') {
    const std::string text = env;
    std::uint64_t megabytes = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), megabytes);
    if (error != std::errc() || end != text.data() + text.size() || megabytes == 0 || megabytes > (std::uint64_t{1} << 40)) {
      throw InvalidInput("environment variable Q3VL_MAX_VISION_MEMORY_MB=" + text + ": expected a positive number of MB");
    }
    return megabytes << 20;
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return std::uint64_t{8} << 30;  // unknown: assume a small machine
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size) / 4 * 3;
}

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

SplitVisualFeatures split_visual_features(const VisualFeatures& features, std::int64_t hidden_size) {
  SplitVisualFeatures out;
  out.levels = features.width / hidden_size - 1;
  out.merged.resize(static_cast<std::size_t>(features.tokens * hidden_size));
  out.deepstack.resize(static_cast<std::size_t>(out.levels * features.tokens * hidden_size));
  for (std::int64_t r = 0; r < features.tokens; ++r) {
    const float* row = features.data.data() + r * features.width;
    std::copy_n(row + package::visual_channel_slot_start(0, hidden_size), hidden_size, out.merged.begin() + r * hidden_size);
    for (std::int64_t k = 0; k < out.levels; ++k) {
      std::copy_n(row + package::visual_channel_slot_start(k + 1, hidden_size), hidden_size,
                  out.deepstack.begin() + (k * features.tokens + r) * hidden_size);
    }
  }
  return out;
}

VisualFeatures join_visual_features(std::span<const float> merged, std::span<const float> deepstack,
                                    std::int64_t hidden_size) {
  VisualFeatures f;
  f.tokens = static_cast<std::int64_t>(merged.size()) / hidden_size;
  const std::int64_t levels = f.tokens > 0 ? static_cast<std::int64_t>(deepstack.size()) / (f.tokens * hidden_size) : 0;
  f.width = hidden_size * (1 + levels);
  f.data.resize(static_cast<std::size_t>(f.tokens * f.width));
  for (std::int64_t r = 0; r < f.tokens; ++r) {
    float* row = f.data.data() + r * f.width;
    std::copy_n(merged.begin() + r * hidden_size, hidden_size, row + package::visual_channel_slot_start(0, hidden_size));
    for (std::int64_t k = 0; k < levels; ++k) {
      std::copy_n(deepstack.begin() + (k * f.tokens + r) * hidden_size, hidden_size,
                  row + package::visual_channel_slot_start(k + 1, hidden_size));
    }
  }
  return f;
}

namespace {

// The encoder's buffers come from ONNX Runtime's arena, which reuses them within a run and gives
// back what the run added once it ends. Without the arena every tensor was fresh heap memory:
// slower on first touch, and glibc kept the freed buffers (174 KB a patch at peak against 93 on
// the 2B's int8 encoder); unshrunk, the arena would hold a long video's activations through the
// prefill that follows and every later turn. No memory pattern: see SessionOptions::memory_pattern.
SessionOptions with_vision_memory(SessionOptions options) {
  options.memory_arena = true;
  options.shrink_arena_after_run = true;
  options.memory_pattern = false;
  return options;
}

}  // namespace

VisionEncoder::VisionEncoder(OnnxEnvironment& environment, const std::filesystem::path& model, const ModelConfig& config,
                             const SessionOptions& options)
    : session_(environment, model, with_vision_memory(options)), config_(config) {}

VisualFeatures VisionEncoder::encode(std::span<const float> pixel_values, std::span<const GridThw> grids) const try {

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
} catch (const Ort::Exception& e) {
  // ONNX Runtime errors outside Run (tensor creation, bindings, outputs) with the model named too.
  throw Error(session_.path().string() + ": ONNX Runtime: " + e.what());
}

}  // namespace q3vl
