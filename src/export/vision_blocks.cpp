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
  const std::string seq_shape = g.constant_i64({1, -1, D});  // MultiHeadAttention's [B=1, N, D]
  const std::string q = g.op("Reshape", {rotate(g, g.op("Reshape", {parts[0], heads_shape}), inputs, hd), seq_shape});
  const std::string k = g.op("Reshape", {rotate(g, g.op("Reshape", {parts[1], heads_shape}), inputs, hd), seq_shape});
  const std::string v = g.op("Reshape", {parts[2], seq_shape});
  const std::string attended =
      g.op("MultiHeadAttention", {q, k, v, "", "", inputs.attention_bias},
           {{"num_heads", heads}, {"scale", static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)))}},
           graph::kMicrosoftDomain, block.hint("attn"));
  const std::string flat_attended = g.op("Reshape", {attended, g.constant_i64({-1, D})});
  return block.weights.linear(flat_attended, block.weight("attn.proj.weight"), block.weight("attn.proj.bias"), block.linear,
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
