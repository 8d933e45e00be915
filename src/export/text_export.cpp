#include "export/text_export.h"

#include <cmath>
#include <limits>

#include "package/format.h"
#include "math/mrope.h"
#include "model/tensor_names.h"

namespace q3vl {
namespace {

using graph::GraphBuilder;

std::string slice_last_axis(GraphBuilder& g, const std::string& x, std::int64_t begin, std::int64_t end) {
  return g.op("Slice", {x, g.constant_i64({begin}), g.constant_i64({end}), g.constant_i64({-1})});
}

std::string rms_norm(GraphBuilder& g, WeightWriter& weights, const std::string& x, const std::string& weight, double eps) {
  return g.op("SimplifiedLayerNormalization", {x, weights.float_tensor(weight)},
              {{"axis", std::int64_t{-1}}, {"epsilon", static_cast<float>(eps)}, {"stash_type", std::int64_t{1}}});
}

// Interleaved MRoPE as ONNX Runtime's RotaryEmbedding sees it: every token gets its own row of
// the cos/sin caches ([B*S, head_dim/2], computed once per forward from position_ids [3, B, S]),
// and position_ids [B, S] just number the tokens, so one fused kernel rotates each of q and k.
struct RotaryTables {
  std::string cos;
  std::string sin;
  std::string token_rows;  // [B, S] = 0 .. B*S-1
};

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

void export_embedding(const Checkpoint& checkpoint, const std::filesystem::path& dir, const LinearOptions& table_options,
                      bool fp16_table, ProgressBar* progress) {
  const ModelConfig& config = checkpoint.config();
  const std::int64_t H = config.text.hidden_size;
  const std::int64_t W = package::visual_channel_width(config);
  graph::ExternalDataWriter external(dir / (std::string(package::kEmbeddingModel) + ".data"),
                                     std::string(package::kEmbeddingModel) + ".data");
  GraphBuilder g("q3vl_embedding", {}, &external);
  WeightWriter weights(g, checkpoint, progress);
  const std::string ids = g.input(package::kInputIds, graph::kInt64, {std::string("batch_size"), std::string("sequence_length")});
  const std::string features = g.input(package::kImageFeatures, graph::kFloat, {std::string("num_image_tokens"), W});

  // Text rows: [embed_tokens(id), 0, ..., 0] (exact zeros: the decoder adds those columns).
  if (fp16_table) weights.set_float_type(graph::kFloat16);
  std::string embedded = weights.gather_rows(ids, names::kEmbedTokens, table_options);  // [B, S, H]
  embedded = g.convert(embedded, weights.float_type(), graph::kFloat);
  const std::string padded = g.op("Pad", {embedded, g.constant_i64({0, 0, 0, 0, 0, W - H})});
  // Visual rows: the k-th pad token (row-major over batch and position) takes feature row k.
  const std::string is_visual = g.op("Or", {g.op("Equal", {ids, g.scalar_i64(config.image_token_id)}),
                                            g.op("Equal", {ids, g.scalar_i64(config.video_token_id)})});
  const std::string flat_visual = g.op("Reshape", {g.op("Cast", {is_visual}, {{"to", std::int64_t{graph::kInt64}}}), g.constant_i64({-1})});
  const std::string order = g.op("Sub", {g.op("CumSum", {flat_visual, g.scalar_i64(0)}), g.scalar_i64(1)});
  // Rows with no feature read an appended zero row, so zero features (decode steps) work too.
  const std::string feature_count = g.op("Gather", {g.op("Shape", {features}), g.scalar_i64(0)});
  const std::string zero_row = g.op("ConstantOfShape", {g.constant_i64({1, W})}, {});
  const std::string extended = g.op("Concat", {features, zero_row}, {{"axis", std::int64_t{0}}});
  const std::string index = g.op("Where", {g.op("Cast", {flat_visual}, {{"to", std::int64_t{graph::kBool}}}), order, feature_count});
  const std::string rows = g.op("Gather", {extended, index});  // [B*S, W]
  const std::string shaped = g.op("Reshape", {rows, g.op("Shape", {padded})});
  const std::string out = g.op("Where", {g.op("Unsqueeze", {is_visual, g.constant_i64({2})}), shaped, padded});
  g.output(out, package::kInputsEmbeds, graph::kFloat, {std::string("batch_size"), std::string("sequence_length"), W});
  external.close();
  g.save(dir / package::kEmbeddingModel);
}

void export_text(const Checkpoint& checkpoint, const TextExportOptions& options, const std::filesystem::path& dir,
                 ProgressBar* progress) {
  const ModelConfig& config = checkpoint.config();
  const TextConfig& t = config.text;
  const std::int64_t H = t.hidden_size;
  const std::int64_t W = package::visual_channel_width(config);
  const std::int64_t levels = static_cast<std::int64_t>(config.vision.deepstack_visual_indexes.size());
  graph::ExternalDataWriter external(dir / (std::string(package::kTextModel) + ".data"),
                                     std::string(package::kTextModel) + ".data");
  GraphBuilder g("q3vl_text", {}, &external);
  WeightWriter weights(g, checkpoint, progress);
  const graph::Dim batch = std::string("batch_size");
  const graph::Dim seq = std::string("sequence_length");
  const graph::Dim total = std::string("total_sequence_length");
  const graph::Dim past = std::string("past_sequence_length");
  const graph::Dim present_len = std::string("present_sequence_length");  // max_length with shared buffers
  const std::string embeds = g.input(package::kInputsEmbeds, graph::kFloat, {batch, seq, W});
  const std::string mask = g.input(package::kAttentionMask, graph::kInt64, {batch, total});
  const std::string positions = g.input(package::kPositionIds, graph::kInt64, {3, batch, seq});

  // GQA's sequence bookkeeping from the attention mask (shared by all layers).
  const std::string seqlens_k = g.op("Cast", {g.op("Sub", {g.op("ReduceSum", {mask, g.constant_i64({1})}, {{"keepdims", std::int64_t{0}}}),
                                                           g.scalar_i64(1)})},
                                     {{"to", std::int64_t{graph::kInt32}}});
  const std::string total_length = g.op("Cast", {g.op("Gather", {g.op("Shape", {mask}), g.scalar_i64(1)})},
                                        {{"to", std::int64_t{graph::kInt32}}});
  const graph::ElemType type = options.fp16 ? graph::kFloat16 : graph::kFloat;
  weights.set_float_type(type);
  auto compute = [&](const std::string& v) { return g.convert(v, graph::kFloat, type); };
  auto float32 = [&](const std::string& v) { return g.convert(v, type, graph::kFloat); };
  const auto table = mrope_tables(g, t, positions, type);

  std::string x = compute(levels > 0 ? slice_last_axis(g, embeds, 0, H) : embeds);
  const std::string q_shape = g.constant_i64({0, 0, t.num_attention_heads, t.head_dim});
  const std::string k_shape = g.constant_i64({0, 0, t.num_key_value_heads, t.head_dim});
  const std::string flat_shape = g.constant_i64({0, 0, -1});
  for (std::int64_t l = 0; l < t.num_hidden_layers; ++l) {
    auto name = [l](const std::string& leaf) { return names::text_layer(l, leaf); };
    const std::string hint = "layer" + std::to_string(l);
    const std::string a = rms_norm(g, weights, x, name("input_layernorm.weight"), t.rms_norm_eps);
    // q, k, v in one matmul; q_norm / k_norm per head (over head_dim) before the rotation.
    const auto qkv = weights.stacked_linear(
        a, {name("self_attn.q_proj.weight"), name("self_attn.k_proj.weight"), name("self_attn.v_proj.weight")},
        options.linear, hint + "_qkv");
    auto norm_rotate = [&](const std::string& y, const std::string& norm, const std::string& shape, std::int64_t heads) {
      const std::string normed = rms_norm(g, weights, g.op("Reshape", {y, shape}), name("self_attn." + norm + ".weight"), t.rms_norm_eps);
      return rotate(g, g.op("Reshape", {normed, flat_shape}), table, heads);
    };
    const std::string q = norm_rotate(qkv[0], "q_norm", q_shape, t.num_attention_heads);
    const std::string k = norm_rotate(qkv[1], "k_norm", k_shape, t.num_key_value_heads);
    const std::string& v = qkv[2];
    const std::string past_k = g.input(package::past_key(l), type, {batch, t.num_key_value_heads, past, t.head_dim});
    const std::string past_v = g.input(package::past_value(l), type, {batch, t.num_key_value_heads, past, t.head_dim});
    const auto attn = g.node("GroupQueryAttention", {q, k, v, past_k, past_v, seqlens_k, total_length},
                             {{"num_heads", t.num_attention_heads},
                              {"kv_num_heads", t.num_key_value_heads},
                              {"scale", static_cast<float>(1.0 / std::sqrt(static_cast<double>(t.head_dim)))}},
                             3, graph::kMicrosoftDomain, hint + "_gqa");
    g.output(attn[1], package::present_key(l), type, {batch, t.num_key_value_heads, present_len, t.head_dim});
    g.output(attn[2], package::present_value(l), type, {batch, t.num_key_value_heads, present_len, t.head_dim});
    const std::string o = weights.linear(attn[0], name("self_attn.o_proj.weight"), "", options.linear, hint + "_o_proj");
    const auto fused = g.node("SkipSimplifiedLayerNormalization", {o, x, weights.float_tensor(name("post_attention_layernorm.weight"))},
                              {{"epsilon", static_cast<float>(t.rms_norm_eps)}}, 4, graph::kMicrosoftDomain, hint + "_post_norm");
    const std::string& m = fused[0];
    const std::string& residual = fused[3];
    const auto gate_up = weights.stacked_linear(m, {name("mlp.gate_proj.weight"), name("mlp.up_proj.weight")},
                                                options.linear, hint + "_gate_up");
    const std::string& gate = gate_up[0];
    const std::string act = g.op("Mul", {g.op("Mul", {gate, g.op("Sigmoid", {gate})}), gate_up[1]});
    x = g.op("Add", {residual, weights.linear(act, name("mlp.down_proj.weight"), "", options.linear, hint + "_down")});
    // Layer outputs as HF reports them: before the DeepStack add.
    if (options.hidden_state_outputs) g.output(float32(x), package::hidden_state(l), graph::kFloat, {batch, seq, H});
    if (l < levels) {
      // DeepStack level l lives in columns (l+1)H..(l+2)H; text rows hold zeros there (docs/model-math.md §5.3).
      x = g.op("Add", {x, compute(slice_last_axis(g, embeds, (l + 1) * H, (l + 2) * H))});
    }
  }
  std::string final_hidden = x;
  if (!options.all_logits) {
    final_hidden = g.op("Slice", {x, g.constant_i64({-1}), g.constant_i64({std::numeric_limits<std::int64_t>::max()}), g.constant_i64({1})});
  }
  const std::string normed = rms_norm(g, weights, final_hidden, names::kFinalNorm, t.rms_norm_eps);
  const std::string logits = weights.linear(normed, names::kLmHead, "", options.lm_head, "lm_head");
  g.output(float32(logits), package::kLogits, graph::kFloat, {batch, options.all_logits ? seq : graph::Dim{std::int64_t{1}}, t.vocab_size});
  external.close();
  g.save(dir / package::kTextModel);
}

}  // namespace q3vl
