#pragma once
// embedding.onnx and text.onnx (docs/model-math.md §5, §7): token embeddings with visual rows scattered in and
// DeepStack carried in the wide channel; the Qwen3 decoder with interleaved MRoPE, GQA over a
// BNSH KV cache, and the DeepStack adds after the first decoder layers.
#include <filesystem>

#include "export/weights.h"
#include "model/checkpoint.h"

namespace q3vl {

struct TextExportOptions {
  LinearOptions linear;         // attention and MLP projections
  LinearOptions lm_head;        // the output projection
  bool all_logits = false;      // logits for every position (default: the last one only)
  // Compute and KV cache in float16 (inputs_embeds and logits stay float32; MRoPE angles are
  // computed in float32, then rounded).
  bool fp16 = false;
  bool hidden_state_outputs = false;  // extra outputs hidden_states.%d (layer outputs, for tests)
  bool router_logit_outputs = false;  // MoE: extra outputs router_logits.%d per sparse layer (for tests)
};

// Writes dir/embedding.onnx (+ .data): input_ids [B,S], image_features [N,(1+K)H] -> inputs_embeds [B,S,(1+K)H].
// `table`: fp32, or int8/int4 (GatherBlockQuantized) for the token embedding table.
// `fp16_table`: a float table stored in float16 (rows are widened to float32 on the way out).
void export_embedding(const Checkpoint& checkpoint, const std::filesystem::path& dir, const LinearOptions& table = {},
                      bool fp16_table = false, ProgressBar* progress = nullptr);

// Throws Unsupported for what export_text cannot do with this config (asymmetric int8/int4 MoE
// experts), so a build refuses it before writing anything.
void check_text_export_supported(const ModelConfig& config, const TextExportOptions& options);

// Writes dir/text.onnx (+ .data).
void export_text(const Checkpoint& checkpoint, const TextExportOptions& options, const std::filesystem::path& dir,
                   ProgressBar* progress = nullptr);

}  // namespace q3vl
