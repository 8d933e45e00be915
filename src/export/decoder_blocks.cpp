#include "export/decoder_blocks.h"

#include <cmath>

#include "export/moe_mlp.h"
#include "math/mrope.h"
#include "model/tensor_names.h"
#include "package/format.h"

namespace q3vl::decoder {
namespace {

using graph::GraphBuilder;

RotaryTables mrope_tables(GraphBuilder& g, const TextConfig& t, const std::string& positions, graph::ElemType type) {
  const std::vector<std::int64_t> axes = mrope::slot_axes(t.mrope_section, t.head_dim);
  const std::vector<float> inv = mrope::inverse_frequencies(t.rope_theta, t.head_dim);
  const std::string per_token = g.op("Transpose", {g.op("Cast", {positions}, {{"to", std::int64_t{graph::kFloat}}})},
                                     {{"perm", std::vector<std::int64_t>{1, 2, 0}}});  // [B, S, 3]
  const std::string slot_positions =
      g.op("Gather", {per_token, g.initializer_i64("mrope_slot_axes", {static_cast<std::int64_t>(axes.size())}, axes)},
           {{"axis", std::int64_t{2}}});  // [B, S, head_dim/2]
  const std::string angles = g.op("Reshape", {g.op("Mul", {slot_positions, g.initializer("mrope_inv_freq", {static_cast<std::int64_t>(inv.size())}, inv)}),
                                              g.constant_i64({-1, t.head_dim / 2})});
  const std::string batch_seq = g.op("Slice", {g.op("Shape", {positions}), g.constant_i64({1}), g.constant_i64({3})});  // [B, S]
  const std::string count = g.op("ReduceProd", {batch_seq}, {{"keepdims", std::int64_t{0}}});
  const std::string rows = g.op("Range", {g.scalar_i64(0), count, g.scalar_i64(1)});
  return {g.convert(g.op("Cos", {angles}), graph::kFloat, type), g.convert(g.op("Sin", {angles}), graph::kFloat, type),
          g.op("Reshape", {rows, batch_seq})};
}

// x [B, S, heads * hd] rotated as HF's rotate_half RoPE (non-interleaved pairs i, i + hd/2).
std::string rotate(GraphBuilder& g, const std::string& x, const RotaryTables& table, std::int64_t heads) {
  return g.op("RotaryEmbedding", {x, table.token_rows, table.cos, table.sin},
              {{"interleaved", std::int64_t{0}}, {"num_heads", heads}}, graph::kMicrosoftDomain);
}

}  // namespace

std::string LayerContext::weight(const std::string& leaf) const { return names::text_layer(layer, leaf); }

std::string LayerContext::hint(const std::string& what) const { return "layer" + std::to_string(layer) + "_" + what; }

AttentionInputs attention_inputs(GraphBuilder& g, const TextConfig& t, const std::string& mask, const std::string& positions,
                                 graph::ElemType type) {
  AttentionInputs out;
  out.seqlens_k = g.op("Cast", {g.op("Sub", {g.op("ReduceSum", {mask, g.constant_i64({1})}, {{"keepdims", std::int64_t{0}}}),
                                             g.scalar_i64(1)})},
                       {{"to", std::int64_t{graph::kInt32}}});
  out.total_length = g.op("Cast", {g.op("Gather", {g.op("Shape", {mask}), g.scalar_i64(1)})}, {{"to", std::int64_t{graph::kInt32}}});
  out.rotary = mrope_tables(g, t, positions, type);
  return out;
}

DecoderBlocks make_decoder_blocks(GraphBuilder& g, const TextConfig& t, bool router_outputs) {
  // Every Qwen3-VL layer attends the same way; MoE checkpoints choose their MLP per layer.
  if (t.moe) return {GqaAttention(g, t), MoeMlp(g, t, router_outputs)};
  return {GqaAttention(g, t), swiglu_mlp};
}

GqaAttention::GqaAttention(GraphBuilder& g, const TextConfig& t)
    : q_shape_(g.constant_i64({0, 0, t.num_attention_heads, t.head_dim})),
      k_shape_(g.constant_i64({0, 0, t.num_key_value_heads, t.head_dim})),
      flat_shape_(g.constant_i64({0, 0, -1})) {}

std::string GqaAttention::operator()(const LayerContext& layer, const AttentionInputs& inputs, const std::string& normed) const {
  GraphBuilder& g = layer.g;
  const TextConfig& t = layer.config;
  const auto qkv = layer.weights.stacked_linear(
      normed, {layer.weight("self_attn.q_proj.weight"), layer.weight("self_attn.k_proj.weight"), layer.weight("self_attn.v_proj.weight")},
      layer.linear, layer.hint("qkv"));
  // q_norm / k_norm per head (over head_dim) before the rotation.
  auto norm_rotate = [&](const std::string& y, const std::string& norm, const std::string& shape, std::int64_t heads) {
    const std::string normed_heads =
        rms_norm(g, layer.weights, g.op("Reshape", {y, shape}), layer.weight("self_attn." + norm + ".weight"), t.rms_norm_eps);
    return rotate(g, g.op("Reshape", {normed_heads, flat_shape_}), inputs.rotary, heads);
  };
  const std::string q = norm_rotate(qkv[0], "q_norm", q_shape_, t.num_attention_heads);
  const std::string k = norm_rotate(qkv[1], "k_norm", k_shape_, t.num_key_value_heads);
  const std::string& v = qkv[2];

  const DecoderDims dims;
  const graph::ElemType type = layer.weights.float_type();
  const graph::Shape past_shape = {dims.batch, t.num_key_value_heads, dims.past, t.head_dim};
  const graph::Shape present_shape = {dims.batch, t.num_key_value_heads, dims.present, t.head_dim};
  const std::string past_k = g.input(package::past_key(layer.layer), type, past_shape);
  const std::string past_v = g.input(package::past_value(layer.layer), type, past_shape);
  const auto attn = g.node("GroupQueryAttention", {q, k, v, past_k, past_v, inputs.seqlens_k, inputs.total_length},
                           {{"num_heads", t.num_attention_heads},
                            {"kv_num_heads", t.num_key_value_heads},
                            {"scale", static_cast<float>(1.0 / std::sqrt(static_cast<double>(t.head_dim)))}},
                           3, graph::kMicrosoftDomain, layer.hint("gqa"));
  g.output(attn[1], package::present_key(layer.layer), type, present_shape);
  g.output(attn[2], package::present_value(layer.layer), type, present_shape);
  return layer.weights.linear(attn[0], layer.weight("self_attn.o_proj.weight"), "", layer.linear, layer.hint("o_proj"));
}

std::string swiglu_mlp(const LayerContext& layer, const std::string& normed) {
  GraphBuilder& g = layer.g;
  const auto gate_up = layer.weights.stacked_linear(normed, {layer.weight("mlp.gate_proj.weight"), layer.weight("mlp.up_proj.weight")},
                                                    layer.linear, layer.hint("gate_up"));
  const std::string& gate = gate_up[0];
  const std::string act = g.op("Mul", {g.op("Mul", {gate, g.op("Sigmoid", {gate})}), gate_up[1]});
  return layer.weights.linear(act, layer.weight("mlp.down_proj.weight"), "", layer.linear, layer.hint("down"));
}

std::string rms_norm(GraphBuilder& g, WeightWriter& weights, const std::string& x, const std::string& weight, double eps) {
  return g.op("SimplifiedLayerNormalization", {x, weights.float_tensor(weight)},
              {{"axis", std::int64_t{-1}}, {"epsilon", static_cast<float>(eps)}, {"stash_type", std::int64_t{1}}});
}

std::string decoder_layer(const LayerContext& layer, const DecoderBlocks& blocks, const AttentionInputs& inputs,
                          const std::string& x) {
  GraphBuilder& g = layer.g;
  const double eps = layer.config.rms_norm_eps;
  const std::string attended = blocks.attention(layer, inputs, rms_norm(g, layer.weights, x, layer.weight("input_layernorm.weight"), eps));
  // The residual add and the post-attention norm in one kernel: output 0 is the normed sum, 3 the sum.
  const auto fused = g.node("SkipSimplifiedLayerNormalization",
                            {attended, x, layer.weights.float_tensor(layer.weight("post_attention_layernorm.weight"))},
                            {{"epsilon", static_cast<float>(eps)}}, 4, graph::kMicrosoftDomain, layer.hint("post_norm"));
  const std::string& residual = fused[3];
  return g.op("Add", {residual, blocks.mlp(layer, fused[0])});
}

std::string wide_channel_slot(GraphBuilder& g, const std::string& embeds, std::int64_t slot, std::int64_t H) {
  return g.op("Slice", {embeds, g.constant_i64({package::visual_channel_slot_start(slot, H)}),
                        g.constant_i64({package::visual_channel_slot_start(slot + 1, H)}), g.constant_i64({-1})});
}

std::string add_deepstack(GraphBuilder& g, const std::string& x, const std::string& embeds, std::int64_t level,
                          std::int64_t H, graph::ElemType type) {
  return g.op("Add", {x, g.convert(wide_channel_slot(g, embeds, level + 1, H), graph::kFloat, type)});
}

}  // namespace q3vl::decoder
