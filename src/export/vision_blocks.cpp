#include "export/vision_blocks.h"

#include <cmath>

#include "model/tensor_names.h"

namespace q3vl::vision {
namespace {

using graph::GraphBuilder;

// x * cos + rotate_half(x) * sin for x [N, heads, hd]; rotate_half(x) = [-x2, x1].
std::string rotate(GraphBuilder& g, const std::string& x, const AttentionInputs& inputs, std::int64_t head_dim) {
  const auto halves = g.node("Split", {x, g.constant_i64({head_dim / 2, head_dim / 2})}, {{"axis", std::int64_t{2}}}, 2);
  const std::string rotated = g.op("Concat", {g.op("Neg", {halves[1]}), halves[0]}, {{"axis", std::int64_t{2}}});
  return g.op("Add", {g.op("Mul", {x, inputs.cos}), g.op("Mul", {rotated, inputs.sin})});
}

std::string multi_head_attention(GraphBuilder& b, const BlockContext& block, const std::string& q, const std::string& k,
                                 const std::string& v) {
  const double hd = static_cast<double>(block.config.head_dim());
  return b.op("MultiHeadAttention", {q, k, v},
              {{"num_heads", block.config.num_heads}, {"scale", static_cast<float>(1.0 / std::sqrt(hd))}},
              graph::kMicrosoftDomain, block.hint("attn"));
}

// The items' attention in `b`, one Loop iteration per item: the item's rows are sliced out and
// reshaped to [slices, rows per slice, D], so its temporal slices are the batch of one
// MultiHeadAttention. The iterations append to the carried [rows so far, D].
std::string attention_per_item(GraphBuilder& b, const BlockContext& block, const AttentionInputs& inputs, const std::string& q,
                               const std::string& k, const std::string& v) {
  const std::int64_t D = block.config.hidden_size;
  const graph::ElemType type = block.weights.float_type();
  const std::string axis0 = b.constant_i64({0});

  GraphBuilder body = b.subgraph(block.hint("attn_item"));
  const std::string item = body.input(b.unique_name(block.hint("item")), graph::kInt64, {});
  const std::string condition = body.input(b.unique_name(block.hint("cond")), graph::kBool, {});
  const std::string so_far = body.input(b.unique_name(block.hint("attended")), type, {std::string("rows"), D});
  const auto per_item = [&](const std::string& values) { return body.op("Unsqueeze", {body.op("Gather", {values, item}), axis0}); };
  const std::string start = per_item(inputs.item_starts);
  const std::string end = per_item(inputs.item_ends);
  const std::string batch_shape =
      body.op("Concat", {per_item(inputs.item_frames), body.constant_i64({-1, D})}, {{"axis", std::int64_t{0}}});
  const auto slices = [&](const std::string& x) { return body.op("Reshape", {body.op("Slice", {x, start, end, axis0}), batch_shape}); };
  const std::string attended = multi_head_attention(body, block, slices(q), slices(k), slices(v));
  const std::string rows = body.op("Reshape", {attended, body.constant_i64({-1, D})});
  body.output(condition, b.unique_name(block.hint("cond_out")), graph::kBool, {});
  body.output(body.op("Concat", {so_far, rows}, {{"axis", std::int64_t{0}}}), b.unique_name(block.hint("attended_out")), type,
              {std::string("rows"), D});

  const std::string none = b.op("Slice", {q, axis0, axis0, axis0});  // [0, D]: nothing attended yet
  return b.op("Loop", {inputs.item_count, "", none}, {{"body", body.body()}}, "", block.hint("attn_items"));
}

// Attention of q, k, v [N, D] within segments. Without a mask, ONNX Runtime's CPU kernel takes its
// flash-attention path: memory linear in the patches, and no work or memory spent across segments,
// however many items one call holds. One item (an image, or one video's frames: the common call)
// is all the rows, so its [slices, rows per slice, D] are views of q, k and v; the Loop over items
// copies each item's rows out, three hidden widths per patch more at the vision pass's peak.
std::string segmented_attention(const BlockContext& block, const AttentionInputs& inputs, const std::string& q,
                                const std::string& k, const std::string& v) {
  GraphBuilder& g = block.g;
  const std::int64_t D = block.config.hidden_size;
  const graph::ElemType type = block.weights.float_type();

  GraphBuilder one = g.subgraph(block.hint("attn_one_item"));
  const std::string frames = one.op("Gather", {inputs.item_frames, one.constant_i64({0})});  // [1]
  const std::string batch_shape = one.op("Concat", {frames, one.constant_i64({-1, D})}, {{"axis", std::int64_t{0}}});
  const auto view = [&](const std::string& x) { return one.op("Reshape", {x, batch_shape}); };
  const std::string attended = multi_head_attention(one, block, view(q), view(k), view(v));
  one.output(one.op("Reshape", {attended, one.constant_i64({-1, D})}), g.unique_name(block.hint("attended_one")), type,
             {std::string("rows"), D});

  GraphBuilder many = g.subgraph(block.hint("attn_many_items"));
  many.output(attention_per_item(many, block, inputs, q, k, v), g.unique_name(block.hint("attended_many")), type,
              {std::string("rows"), D});

  const std::string single = g.op("Equal", {inputs.item_count, g.scalar_i64(1)});
  return g.op("If", {single}, {{"then_branch", one.body()}, {"else_branch", many.body()}}, "", block.hint("attn_segments"));
}

}  // namespace

std::string BlockContext::weight(const std::string& leaf) const { return names::vision_block(block, leaf); }

std::string BlockContext::hint(const std::string& what) const { return "block" + std::to_string(block) + "_" + what; }

VisionBlocks make_vision_blocks(const VisionConfig&) { return {vision_attention, gelu_mlp}; }

std::string vision_attention(const BlockContext& block, const AttentionInputs& inputs, const std::string& normed) {
  GraphBuilder& g = block.g;
  const std::int64_t D = block.config.hidden_size;
  const std::int64_t heads = block.config.num_heads;
  const std::int64_t hd = block.config.head_dim();
  const std::string qkv =
      block.weights.linear(normed, block.weight("attn.qkv.weight"), block.weight("attn.qkv.bias"), block.linear, block.hint("qkv"));
  const auto parts = g.node("Split", {qkv, g.constant_i64({D, D, D})}, {{"axis", std::int64_t{1}}}, 3);
  const std::string heads_shape = g.constant_i64({-1, heads, hd});
  const std::string rows_shape = g.constant_i64({-1, D});
  const std::string q = g.op("Reshape", {rotate(g, g.op("Reshape", {parts[0], heads_shape}), inputs, hd), rows_shape});
  const std::string k = g.op("Reshape", {rotate(g, g.op("Reshape", {parts[1], heads_shape}), inputs, hd), rows_shape});
  const std::string attended = segmented_attention(block, inputs, q, k, parts[2]);
  return block.weights.linear(attended, block.weight("attn.proj.weight"), block.weight("attn.proj.bias"), block.linear,
                              block.hint("proj"));
}

std::string gelu_mlp(const BlockContext& block, const std::string& normed) {
  const std::string up = block.weights.linear(normed, block.weight("mlp.linear_fc1.weight"), "", block.linear, block.hint("fc1"));
  const std::string act = block.g.op("FastGelu", {up, block.weights.float_tensor(block.weight("mlp.linear_fc1.bias"))}, {},
                                     graph::kMicrosoftDomain);  // tanh GELU (gelu_pytorch_tanh)
  return block.weights.linear(act, block.weight("mlp.linear_fc2.weight"), block.weight("mlp.linear_fc2.bias"), block.linear,
                              block.hint("fc2"));
}

std::string layer_norm(GraphBuilder& g, WeightWriter& weights, const std::string& x, const std::string& prefix) {
  return g.op("LayerNormalization", {x, weights.float_tensor(prefix + "weight"), weights.float_tensor(prefix + "bias")},
              {{"axis", std::int64_t{-1}}, {"epsilon", 1e-6f}});
}

std::string vision_block(const BlockContext& block, const VisionBlocks& blocks, const AttentionInputs& inputs,
                         const std::string& x) {
  GraphBuilder& g = block.g;
  const std::string attended = blocks.attention(block, inputs, layer_norm(g, block.weights, x, block.weight("norm1.")));
  const std::string after_attn = g.op("Add", {x, attended});
  return g.op("Add", {after_attn, blocks.mlp(block, layer_norm(g, block.weights, after_attn, block.weight("norm2.")))});
}

PatchMerger final_merger() { return {names::merger(""), false, "merger"}; }

PatchMerger deepstack_merger(std::int64_t level) {
  return {names::deepstack_merger(level, ""), true, "deepstack" + std::to_string(level)};
}

std::string patch_merger(GraphBuilder& g, WeightWriter& weights, const VisionConfig& v, const LinearOptions& linear,
                         const std::string& x, const PatchMerger& merger) {
  auto name = [&merger](const std::string& leaf) { return merger.weight_prefix + leaf; };
  const std::string shape = g.constant_i64({-1, v.hidden_size * 4});
  const std::string grouped = merger.norm_after_concat ? layer_norm(g, weights, g.op("Reshape", {x, shape}), name("norm."))
                                                       : g.op("Reshape", {layer_norm(g, weights, x, name("norm.")), shape});
  const std::string up = weights.linear(grouped, name("linear_fc1.weight"), "", linear, merger.hint + "_fc1");
  const std::string act =
      g.op("Gelu", {g.op("Add", {up, weights.float_tensor(name("linear_fc1.bias"))})}, {}, graph::kMicrosoftDomain);
  return weights.linear(act, name("linear_fc2.weight"), name("linear_fc2.bias"), linear, merger.hint + "_fc2");
}

}  // namespace q3vl::vision
