#include "export/text_export.h"

#include <limits>

#include "export/decoder_blocks.h"
#include "export/kernel_graph.h"
#include "package/kernel_graphs.h"
#include "util/files.h"
#include "package/format.h"
#include "model/tensor_names.h"
#include "q3vl/error.h"

namespace q3vl {
namespace {

using graph::GraphBuilder;

// Final norm and lm_head over the last position (or all of them), as the float32 logits output.
void write_logits(GraphBuilder& g, WeightWriter& weights, const TextConfig& t, const TextExportOptions& options,
                  const std::string& hidden, const decoder::DecoderDims& dims) {
  std::string final_hidden = hidden;
  if (!options.all_logits) {
    final_hidden = g.op("Slice", {hidden, g.constant_i64({-1}), g.constant_i64({std::numeric_limits<std::int64_t>::max()}), g.constant_i64({1})});
  }
  const std::string normed = decoder::rms_norm(g, weights, final_hidden, names::kFinalNorm, t.rms_norm_eps);
  const std::string logits = weights.linear(normed, names::kLmHead, "", options.lm_head, "lm_head");
  g.output(g.convert(logits, weights.float_type(), graph::kFloat), package::kLogits, graph::kFloat,
           {dims.batch, options.all_logits ? dims.sequence : graph::Dim{std::int64_t{1}}, t.vocab_size});
}

}  // namespace

void check_text_export_supported(const ModelConfig& config, const TextExportOptions& options) {
  if (config.text.moe && options.linear.format != WeightFormat::F32 && !options.linear.symmetric) {
    throw Unsupported("asymmetric " + to_string(options.linear.format) +
                      " weights for Qwen3-VL MoE experts are not supported (ONNX Runtime's QMoE takes symmetric blocks)");
  }
}

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
  check_text_export_supported(config, options);
  const std::int64_t H = t.hidden_size;
  const std::int64_t levels = static_cast<std::int64_t>(config.vision.deepstack_visual_indexes.size());
  graph::ExternalDataWriter external(dir / (std::string(package::kTextModel) + ".data"),
                                     std::string(package::kTextModel) + ".data");
  GraphBuilder g("q3vl_text", {}, &external);
  WeightWriter weights(g, checkpoint, progress);
  const decoder::DecoderDims dims;
  const std::string embeds =
      g.input(package::kInputsEmbeds, graph::kFloat, {dims.batch, dims.sequence, package::visual_channel_width(config)});
  const std::string mask = g.input(package::kAttentionMask, graph::kInt64, {dims.batch, dims.total});
  const std::string positions = g.input(package::kPositionIds, graph::kInt64, {3, dims.batch, dims.sequence});

  const graph::ElemType type = options.fp16 ? graph::kFloat16 : graph::kFloat;
  weights.set_float_type(type);
  const decoder::AttentionInputs attention = decoder::attention_inputs(g, t, mask, positions, type);
  // The token embeddings: slot 0 of the wide channel (all of it when there is no DeepStack).
  std::string x = g.convert(levels > 0 ? decoder::wide_channel_slot(g, embeds, 0, H) : embeds, graph::kFloat, type);
  const decoder::DecoderBlocks blocks = decoder::make_decoder_blocks(g, t, options.router_logit_outputs);
  for (std::int64_t l = 0; l < t.num_hidden_layers; ++l) {
    x = decoder::decoder_layer({g, weights, t, options.linear, l}, blocks, attention, x);
    // Layer outputs as HF reports them: before the DeepStack add.
    if (options.hidden_state_outputs) {
      g.output(g.convert(x, type, graph::kFloat), package::hidden_state(l), graph::kFloat, {dims.batch, dims.sequence, H});
    }
    if (l < levels) x = decoder::add_deepstack(g, x, embeds, l, H, type);
  }
  write_logits(g, weights, t, options, x, dims);
  external.close();
  g.save(dir / package::kTextModel);
  // int4 weights with int8 activations allowed (accuracy level 4): also the graph that runs them with
  // q3vl's kernels, stamped with the text.onnx it belongs to.
  if (options.linear.format == WeightFormat::Int4 && !options.fp16 && options.linear.accuracy_level == 4 &&
      use_q3vl_kernels(g.model()).total() > 0) {
    graph::ExternalDataWriter half_scales(dir / package::kKernelTextData, package::kKernelTextData);
    use_half_scales(g.model(), dir, half_scales);
    half_scales.close();
    g.save(dir / package::kKernelTextModel);
    write_json_file(dir / kKernelTextStamp, kernel_text_stamp(dir));
  }
}

}  // namespace q3vl
