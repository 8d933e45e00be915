#include "export/vision_export.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "export/kernel_graph.h"
#include "export/vision_blocks.h"
#include "package/format.h"
#include "package/kernel_graphs.h"
#include "util/files.h"
#include "graph/graph_arith.h"
#include "math/vision_geometry.h"
#include "model/tensor_names.h"

namespace q3vl {
namespace {

using graph::Attribute;
using graph::GraphArith;
using graph::GraphBuilder;

// Per-patch geometry derived from image_grid_thw, in the row order of pixel_values.
struct PatchGeometry {
  std::string position_embedding;    // [N, D]
  vision::AttentionInputs attention;  // rotary tables and the attention segments
};

std::string column(GraphBuilder& g, const std::string& grid, std::int64_t index) {
  return g.op("Gather", {grid, g.constant_i64({index})}, {{"axis", std::int64_t{1}}});  // [n, 1]
}

std::string flat(GraphBuilder& g, const std::string& x) { return g.op("Reshape", {x, g.constant_i64({-1})}); }

// Where each row of pixel_values sits (int64 values per patch [N]), derived from image_grid_thw.
struct PatchIndex {
  std::string item;           // the grid row (image or video) the patch belongs to
  std::string row, col;       // its place in its temporal slice
  std::string height, width;  // the item's grid height and width
  std::string item_starts;    // per item [n]: its first row in pixel_values
  std::string item_ends;      // per item [n]: one past its last row
  std::string item_frames;    // per item [n]: its temporal slices (grid t)
};

PatchIndex index_patches(GraphBuilder& g, GraphArith& a, const std::string& pixels, const std::string& grid) {
  const std::string t = flat(g, column(g, grid, 0));
  const std::string h = flat(g, column(g, grid, 1));
  const std::string w = flat(g, column(g, grid, 2));
  const std::string area = a.mul(h, w);
  const std::string counts = a.mul(t, area);
  const std::string axis0 = g.scalar_i64(0);
  const std::string ends = g.op("CumSum", {counts, axis0});
  const std::string starts = a.sub(ends, counts);
  PatchIndex out;
  out.item_starts = starts;
  out.item_ends = ends;
  out.item_frames = t;

  // Patch p belongs to the item whose range contains it: count the items that end at or before p.
  const std::string rows = g.op("Gather", {g.op("Shape", {pixels}), g.scalar_i64(0)});  // scalar N
  const std::string p = g.op("Range", {g.scalar_i64(0), rows, g.scalar_i64(1)});
  const std::string p_col = g.op("Unsqueeze", {p, g.constant_i64({1})});        // [N, 1]
  const std::string ends_row = g.op("Unsqueeze", {ends, g.constant_i64({0})});  // [1, n]
  out.item = g.op(
      "ReduceSum", {g.op("Cast", {g.op("GreaterOrEqual", {p_col, ends_row})}, {{"to", std::int64_t{graph::kInt64}}}),
                    g.constant_i64({1})},
      {{"keepdims", std::int64_t{0}}});
  auto per_patch = [&](const std::string& per_item) { return g.op("Gather", {per_item, out.item}); };
  const std::string local = a.sub(p, per_patch(starts));
  const std::string patch_area = per_patch(area);
  const std::string index_in_frame = a.mod(local, patch_area);
  out.height = per_patch(h);
  out.width = per_patch(w);
  std::tie(out.row, out.col) = vision_geometry::patch_row_col(a, index_in_frame, out.width);
  return out;
}

// 1 / 10000^(2k / rd) for k < rd / 2, rd = head_dim / 2 (docs/model-math.md §4.3).
std::vector<float> rotary_inverse_frequencies(std::int64_t head_dim) {
  const std::int64_t rd = head_dim / 2;
  std::vector<float> inv(static_cast<std::size_t>(rd / 2));
  for (std::int64_t k = 0; k < rd / 2; ++k) {
    inv[static_cast<std::size_t>(k)] =
        static_cast<float>(1.0 / std::pow(10000.0, static_cast<double>(static_cast<float>(2 * k) / static_cast<float>(rd))));
  }
  return inv;
}

PatchGeometry build_geometry(GraphBuilder& g, WeightWriter& weights, const VisionConfig& v, const std::string& pixels,
                             const std::string& grid) {
  const graph::ElemType type = weights.float_type();
  auto to_compute_type = [&](const std::string& x) { return g.convert(x, graph::kFloat, type); };
  GraphArith a(g);
  const PatchIndex patch = index_patches(g, a, pixels, grid);

  PatchGeometry out;
  // Learned position table, bilinearly resampled to this grid: Σ_k table[index_k] * weight_k.
  const std::string table = weights.float_tensor(names::kPositionEmbedding, graph::kFloat);
  const auto corners = vision_geometry::position_corners(a, patch.row, patch.col, patch.height, patch.width, v.position_grid_side());
  const std::string one = g.constant_i64({1});
  std::string sum;
  for (int k = 0; k < 4; ++k) {
    const std::string term = g.op("Mul", {g.op("Gather", {table, corners.index[k]}),
                                          g.op("Unsqueeze", {corners.weight[k], one})});
    sum = k == 0 ? term : g.op("Add", {sum, term});
  }
  out.position_embedding = to_compute_type(sum);

  // 2-D rotary angles: the first half of each rotary half-head turns with the row, the second with
  // the column.
  const std::vector<float> inv = rotary_inverse_frequencies(v.head_dim());
  const std::string inv_freq = g.initializer("vision_rotary_inv_freq", {static_cast<std::int64_t>(inv.size())}, inv);
  const std::string row_angles = g.op("Mul", {g.op("Unsqueeze", {a.to_float(patch.row), one}), inv_freq});
  const std::string col_angles = g.op("Mul", {g.op("Unsqueeze", {a.to_float(patch.col), one}), inv_freq});
  const std::string half = g.op("Concat", {row_angles, col_angles}, {{"axis", std::int64_t{1}}});
  const std::string angles = g.op("Unsqueeze", {g.op("Concat", {half, half}, {{"axis", std::int64_t{1}}}), one});
  out.attention.cos = to_compute_type(g.op("Cos", {angles}));
  out.attention.sin = to_compute_type(g.op("Sin", {angles}));

  // Attention segments (docs/model-math.md §4.4): each block's attention walks the items and
  // treats an item's temporal slices as a batch, so no patch sees another slice's.
  out.attention.item_starts = patch.item_starts;
  out.attention.item_ends = patch.item_ends;
  out.attention.item_frames = patch.item_frames;
  out.attention.item_count = g.op("Gather", {g.op("Shape", {grid}), g.scalar_i64(0)});
  return out;
}

// x again, as a view that ONNX Runtime can only compute once `first` exists. Its CPU order walks
// back from the graph's outputs depth first, so a DeepStack merger, read only by the final Concat,
// ran after the last block and its input (one hidden width per patch) stayed alive through every
// block after its tap. Tied to the next block's input, the merger runs at its tap and only its
// output (half a width per patch) is held.
std::string after(GraphBuilder& g, const std::string& x, const std::string& first) {
  const std::string no_change = g.op("Mul", {g.op("Shape", {first}), g.constant_i64({0})});  // [0, 0]
  return g.op("Reshape", {x, g.op("Add", {g.op("Shape", {x}), no_change})});
}

}  // namespace

void export_vision(const Checkpoint& checkpoint, const VisionExportOptions& options, const std::filesystem::path& dir,
                   ProgressBar* progress) {
  const ModelConfig& config = checkpoint.config();
  const VisionConfig& v = config.vision;
  graph::ExternalDataWriter external(dir / (std::string(package::kVisionModel) + ".data"),
                                     std::string(package::kVisionModel) + ".data");
  GraphBuilder g("q3vl_vision", {}, &external);
  WeightWriter weights(g, checkpoint, progress);
  if (options.fp16) weights.set_float_type(graph::kFloat16);

  const std::string pixels =
      g.input(package::kPixelValues, graph::kFloat, {std::string("num_patches"), v.patch_input_size()});
  const std::string compute_pixels = g.convert(pixels, graph::kFloat, weights.float_type());
  const std::string grid = g.input(package::kImageGridThw, graph::kInt64, {std::string("num_images"), 3});
  const PatchGeometry geo = build_geometry(g, weights, v, pixels, grid);

  // Patch embedding: Conv3d with kernel = stride is a matmul over the flattened patch (docs/model-math.md §4.1).
  const TensorView kernel = checkpoint.tensor(names::kPatchEmbedWeight);
  std::string x = g.op("Add", {weights.linear(compute_pixels, kernel, v.hidden_size, v.patch_input_size(),
                                              names::kPatchEmbedBias, options.linear, "patch_embed"),
                               geo.position_embedding});
  const vision::VisionBlocks blocks = vision::make_vision_blocks(v);
  std::vector<std::string> features(1);  // [final merger, DeepStack levels...]
  for (std::int64_t i = 0; i < v.depth; ++i) {
    x = vision::vision_block({g, weights, v, options.linear, i}, blocks, geo.attention, x);
    const auto& taps = v.deepstack_visual_indexes;
    const auto level = std::find(taps.begin(), taps.end(), i);
    if (level != taps.end()) {
      features.push_back(vision::patch_merger(g, weights, v, options.linear, x, vision::deepstack_merger(level - taps.begin())));
      x = after(g, x, features.back());
    }
  }
  features[0] = vision::patch_merger(g, weights, v, options.linear, x, vision::final_merger());
  std::string wide = features.size() == 1 ? features[0] : g.op("Concat", features, {{"axis", std::int64_t{1}}});
  wide = g.convert(wide, weights.float_type(), graph::kFloat);
  g.output(wide, package::kImageFeatures, graph::kFloat,
           {std::string("num_image_tokens"), package::visual_channel_width(config)});
  external.close();
  g.save(dir / package::kVisionModel);
  // Quantized weights with int8 activations allowed (accuracy level 4): also the graph that runs
  // them with q3vl's kernels, stamped with the vision.onnx it belongs to.
  const bool quantized = options.linear.format == WeightFormat::Int8 || options.linear.format == WeightFormat::Int4;
  if (quantized && !options.fp16 && options.linear.accuracy_level == 4 && use_q3vl_kernels(g.model(), {.int4 = true, .int8 = true}).total() > 0) {
    g.save(dir / package::kKernelVisionModel);
    write_json_file(dir / kKernelVisionStamp, kernel_vision_stamp(dir));
  }
}

}  // namespace q3vl
