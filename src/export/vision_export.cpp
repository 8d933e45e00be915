#include "export/vision_export.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "package/format.h"
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
  std::string position_embedding;  // [N, D]
  std::string cos;                 // [N, 1, hd] rotary tables, broadcast over heads
  std::string sin;
  std::string attention_bias;      // [1, 1, N, N]: 0 inside an attention segment, -1e30 outside
};

std::string column(GraphBuilder& g, const std::string& grid, std::int64_t index) {
  return g.op("Gather", {grid, g.constant_i64({index})}, {{"axis", std::int64_t{1}}});  // [n, 1]
}

std::string flat(GraphBuilder& g, const std::string& x) { return g.op("Reshape", {x, g.constant_i64({-1})}); }

PatchGeometry build_geometry(GraphBuilder& g, WeightWriter& weights, const ModelConfig& config,
                             const std::string& pixels, const std::string& grid) {
  const graph::ElemType type = weights.float_type();
  auto to_compute_type = [&](const std::string& x) { return g.convert(x, graph::kFloat, type); };
  const VisionConfig& v = config.vision;
  GraphArith a(g);
  const std::string t = flat(g, column(g, grid, 0));
  const std::string h = flat(g, column(g, grid, 1));
  const std::string w = flat(g, column(g, grid, 2));
  const std::string area = a.mul(h, w);
  const std::string counts = a.mul(t, area);
  const std::string axis0 = g.scalar_i64(0);
  const std::string ends = g.op("CumSum", {counts, axis0});
  const std::string starts = a.sub(ends, counts);
  const std::string frame_starts = a.sub(g.op("CumSum", {t, axis0}), t);

  // Patch p belongs to the item whose range contains it: count the items that end at or before p.
  const std::string rows = g.op("Gather", {g.op("Shape", {pixels}), g.scalar_i64(0)});  // scalar N
  const std::string p = g.op("Range", {g.scalar_i64(0), rows, g.scalar_i64(1)});
  const std::string p_col = g.op("Unsqueeze", {p, g.constant_i64({1})});        // [N, 1]
  const std::string ends_row = g.op("Unsqueeze", {ends, g.constant_i64({0})});  // [1, n]
  const std::string item = g.op(
      "ReduceSum", {g.op("Cast", {g.op("GreaterOrEqual", {p_col, ends_row})}, {{"to", std::int64_t{graph::kInt64}}}),
                    g.constant_i64({1})},
      {{"keepdims", std::int64_t{0}}});
  auto per_patch = [&](const std::string& per_item) { return g.op("Gather", {per_item, item}); };
  const std::string local = a.sub(p, per_patch(starts));
  const std::string patch_area = per_patch(area);
  const std::string frame = a.div(local, patch_area);
  const std::string index_in_frame = a.mod(local, patch_area);
  const std::string patch_h = per_patch(h);
  const std::string patch_w = per_patch(w);
  const auto [row, col] = vision_geometry::patch_row_col(a, index_in_frame, patch_w);

  PatchGeometry out;
  // Learned position table, bilinearly resampled to this grid: Σ_k table[index_k] * weight_k.
  const std::string table = weights.float_tensor(names::kPositionEmbedding, graph::kFloat);
  const auto corners = vision_geometry::position_corners(a, row, col, patch_h, patch_w, v.position_grid_side());
  const std::string one = g.constant_i64({1});
  std::string sum;
  for (int k = 0; k < 4; ++k) {
    const std::string term = g.op("Mul", {g.op("Gather", {table, corners.index[k]}),
                                          g.op("Unsqueeze", {corners.weight[k], one})});
    sum = k == 0 ? term : g.op("Add", {sum, term});
  }
  out.position_embedding = to_compute_type(sum);

  // 2-D rotary angles: the first half of each rotary half-head turns with the row, the second with
  // the column; inv[k] = 1 / 10000^(2k / rd), rd = head_dim / 2 (docs/model-math.md §4.3).
  const std::int64_t rd = v.head_dim() / 2;
  std::vector<float> inv(static_cast<std::size_t>(rd / 2));
  for (std::int64_t k = 0; k < rd / 2; ++k) {
    inv[static_cast<std::size_t>(k)] =
        static_cast<float>(1.0 / std::pow(10000.0, static_cast<double>(static_cast<float>(2 * k) / static_cast<float>(rd))));
  }
  const std::string inv_freq = g.initializer("vision_rotary_inv_freq", {rd / 2}, inv);
  const std::string row_angles = g.op("Mul", {g.op("Unsqueeze", {a.to_float(row), one}), inv_freq});
  const std::string col_angles = g.op("Mul", {g.op("Unsqueeze", {a.to_float(col), one}), inv_freq});
  const std::string half = g.op("Concat", {row_angles, col_angles}, {{"axis", std::int64_t{1}}});
  const std::string angles = g.op("Unsqueeze", {g.op("Concat", {half, half}, {{"axis", std::int64_t{1}}}), one});
  out.cos = to_compute_type(g.op("Cos", {angles}));
  out.sin = to_compute_type(g.op("Sin", {angles}));

  // Attention segments: every temporal slice of every item attends only to itself (docs/model-math.md §4.4).
  const std::string segment = a.add(per_patch(frame_starts), frame);
  const std::string same = g.op("Equal", {g.op("Unsqueeze", {segment, one}), g.op("Unsqueeze", {segment, g.constant_i64({0})})});
  // Far below any attention score, yet finite in float16 too.
  const std::string bias = g.op("Where", {same, g.scalar_f32(0.0f), g.scalar_f32(type == graph::kFloat ? -1e30f : -30000.0f)});
  out.attention_bias = to_compute_type(g.op("Unsqueeze", {bias, g.constant_i64({0, 1})}));
  return out;
}

// x * cos + rotate_half(x) * sin for x [N, heads, hd]; rotate_half(x) = [-x2, x1].
std::string rotate(GraphBuilder& g, const std::string& x, const PatchGeometry& geo, std::int64_t head_dim) {
  const auto halves = g.node("Split", {x, g.constant_i64({head_dim / 2, head_dim / 2})}, {{"axis", std::int64_t{2}}}, 2);
  const std::string rotated = g.op("Concat", {g.op("Neg", {halves[1]}), halves[0]}, {{"axis", std::int64_t{2}}});
  return g.op("Add", {g.op("Mul", {x, geo.cos}), g.op("Mul", {rotated, geo.sin})});
}

std::string layer_norm(GraphBuilder& g, WeightWriter& weights, const std::string& x, const std::string& prefix) {
  return g.op("LayerNormalization", {x, weights.float_tensor(prefix + "weight"), weights.float_tensor(prefix + "bias")},
              {{"axis", std::int64_t{-1}}, {"epsilon", 1e-6f}});
}

std::string vision_block(GraphBuilder& g, WeightWriter& weights, const ModelConfig& config, const VisionExportOptions& o,
                         std::int64_t i, const std::string& x, const PatchGeometry& geo) {
  const VisionConfig& v = config.vision;
  const std::int64_t D = v.hidden_size;
  const std::int64_t hd = v.head_dim();
  auto name = [i](const std::string& leaf) { return names::vision_block(i, leaf); };
  const std::string hint = "block" + std::to_string(i);

  const std::string normed = layer_norm(g, weights, x, name("norm1."));
  const std::string qkv = weights.linear(normed, name("attn.qkv.weight"), name("attn.qkv.bias"), o.linear, hint + "_qkv");
  const auto parts = g.node("Split", {qkv, g.constant_i64({D, D, D})}, {{"axis", std::int64_t{1}}}, 3);
  const std::string heads_shape = g.constant_i64({-1, v.num_heads, hd});
  const std::string seq_shape = g.constant_i64({1, -1, D});
  const std::string q = g.op("Reshape", {rotate(g, g.op("Reshape", {parts[0], heads_shape}), geo, hd), seq_shape});
  const std::string k = g.op("Reshape", {rotate(g, g.op("Reshape", {parts[1], heads_shape}), geo, hd), seq_shape});
  const std::string val = g.op("Reshape", {parts[2], seq_shape});
  const std::string attended =
      g.op("MultiHeadAttention", {q, k, val, "", "", geo.attention_bias},
           {{"num_heads", v.num_heads}, {"scale", static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)))}},
           graph::kMicrosoftDomain, hint + "_attn");
  const std::string flat_attended = g.op("Reshape", {attended, g.constant_i64({-1, D})});
  const std::string after_attn = g.op(
      "Add", {x, weights.linear(flat_attended, name("attn.proj.weight"), name("attn.proj.bias"), o.linear, hint + "_proj")});

  const std::string normed2 = layer_norm(g, weights, after_attn, name("norm2."));
  const std::string up = weights.linear(normed2, name("mlp.linear_fc1.weight"), "", o.linear, hint + "_fc1");
  const std::string act = g.op("FastGelu", {up, weights.float_tensor(name("mlp.linear_fc1.bias"))}, {},
                               graph::kMicrosoftDomain);  // tanh GELU (gelu_pytorch_tanh)
  const std::string down = weights.linear(act, name("mlp.linear_fc2.weight"), name("mlp.linear_fc2.bias"), o.linear, hint + "_fc2");
  return g.op("Add", {after_attn, down});
}

// Patch merger: 2x2 blocks of consecutive rows -> one row of 4D -> fc1, erf GELU, fc2 (docs/model-math.md §4.6).
// The final merger normalizes each patch before the concat; DeepStack mergers after it.
template <typename NameOf>
std::string merger(GraphBuilder& g, WeightWriter& weights, const ModelConfig& config, const VisionExportOptions& o,
                   const std::string& x, NameOf name, bool norm_after_concat, const std::string& hint) {
  const std::int64_t merged = config.vision.hidden_size * 4;
  const std::string shape = g.constant_i64({-1, merged});
  const std::string grouped = norm_after_concat ? layer_norm(g, weights, g.op("Reshape", {x, shape}), name("norm."))
                                                : g.op("Reshape", {layer_norm(g, weights, x, name("norm.")), shape});
  const std::string up = weights.linear(grouped, name("linear_fc1.weight"), "", o.linear, hint + "_fc1");
  const std::string act =
      g.op("Gelu", {g.op("Add", {up, weights.float_tensor(name("linear_fc1.bias"))})}, {}, graph::kMicrosoftDomain);
  return weights.linear(act, name("linear_fc2.weight"), name("linear_fc2.bias"), o.linear, hint + "_fc2");
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
  const PatchGeometry geo = build_geometry(g, weights, config, pixels, grid);

  // Patch embedding: Conv3d with kernel = stride is a matmul over the flattened patch (docs/model-math.md §4.1).
  const TensorView kernel = checkpoint.tensor(names::kPatchEmbedWeight);
  std::string x = g.op("Add", {weights.linear(compute_pixels, kernel, v.hidden_size, v.patch_input_size(),
                                              names::kPatchEmbedBias, options.linear, "patch_embed"),
                               geo.position_embedding});
  std::vector<std::string> features(1);
  for (std::int64_t i = 0; i < v.depth; ++i) {
    x = vision_block(g, weights, config, options, i, x, geo);
    const auto& taps = v.deepstack_visual_indexes;
    const auto level = std::find(taps.begin(), taps.end(), i);
    if (level != taps.end()) {
      const std::int64_t k = level - taps.begin();
      features.push_back(merger(
          g, weights, config, options, x, [k](const std::string& leaf) { return names::deepstack_merger(k, leaf); },
          true, "deepstack" + std::to_string(k)));
    }
  }
  features[0] = merger(g, weights, config, options, x, [](const std::string& leaf) { return names::merger(leaf); },
                       false, "merger");
  std::string wide = features.size() == 1 ? features[0] : g.op("Concat", features, {{"axis", std::int64_t{1}}});
  wide = g.convert(wide, weights.float_type(), graph::kFloat);
  g.output(wide, package::kImageFeatures, graph::kFloat,
           {std::string("num_image_tokens"), package::visual_channel_width(config)});
  external.close();
  g.save(dir / package::kVisionModel);
}

}  // namespace q3vl
