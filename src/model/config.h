#pragma once
// The one place that reads a Qwen3-VL config.json (docs/model-math.md §1). Everything else takes ModelConfig.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "math/rope_index.h"
#include "util/json_fields.h"

namespace q3vl {

// The sparse MLP of Qwen3-VL MoE text layers (docs/model-math.md §13): a router picks
// `experts_per_token` of `experts` SwiGLU experts per token; no shared expert, no biases.
struct MoeConfig {
  std::int64_t experts = 0;            // num_experts (transformers 5 writes num_local_experts); 0: no sparse layer
  std::int64_t experts_per_token = 0;  // num_experts_per_tok (k)
  std::int64_t intermediate_size = 0;  // moe_intermediate_size, per expert
  std::int64_t sparse_step = 1;        // decoder_sparse_step: every step-th layer is sparse
  std::vector<std::int64_t> mlp_only_layers;  // layers that keep the dense MLP regardless
  bool norm_topk_prob = true;          // the top-k probabilities are renormalised to sum to 1

  // HF's rule (Qwen3VLMoeTextDecoderLayer): sparse unless listed in mlp_only_layers, when there are
  // experts and (layer + 1) is a multiple of decoder_sparse_step.
  bool sparse_layer(std::int64_t layer) const;
};

struct TextConfig {
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 5000000.0;
  // Rotary slots per axis (T, H, W), at least 3 entries; the interleaved layout is implied (HF
  // hard-codes it and never reads "mrope_interleaved"). Only entries 1 and 2 matter, as Python
  // slice stops (see math/mrope.h); they need not sum to head_dim / 2.
  std::vector<std::int64_t> mrope_section;
  bool attention_bias = false;
  std::string hidden_act = "silu";
  std::int64_t bos_token_id = -1;
  std::int64_t eos_token_id = -1;
  std::optional<MoeConfig> moe;  // set for qwen3_vl_moe checkpoints

  // Whether this layer's MLP is the sparse expert block (false for every dense-model layer).
  bool sparse_layer(std::int64_t layer) const { return moe && moe->sparse_layer(layer); }
};

struct VisionConfig {
  std::int64_t depth = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_heads = 0;
  std::int64_t in_channels = 3;
  std::int64_t patch_size = 16;
  std::int64_t temporal_patch_size = 2;
  std::int64_t spatial_merge_size = 2;
  std::int64_t out_hidden_size = 0;
  std::int64_t num_position_embeddings = 0;
  std::vector<std::int64_t> deepstack_visual_indexes;
  std::string hidden_act = "gelu_pytorch_tanh";

  std::int64_t head_dim() const { return hidden_size / num_heads; }
  // Length of one flattened patch: C * Tp * P * P (1536 for the released models).
  std::int64_t patch_input_size() const {
    return in_channels * temporal_patch_size * patch_size * patch_size;
  }
  // Side of the learned position-embedding grid (48 for 2304 embeddings).
  std::int64_t position_grid_side() const;
};

struct ModelConfig {
  TextConfig text;
  VisionConfig vision;
  std::int64_t image_token_id = 151655;
  std::int64_t video_token_id = 151656;
  std::int64_t vision_start_token_id = 151652;
  std::int64_t vision_end_token_id = 151653;
  bool tie_word_embeddings = false;
  VisualPadTokens visual_pads() const { return {image_token_id, video_token_id}; }
};

// Parses config.json text; `source` names the file in error messages. Accepts both the
// transformers 4.57 form (rope_theta + rope_scaling) and the v5 form (rope_parameters); absent
// optional fields take HF's defaults. Throws InvalidInput naming the file and field for malformed,
// implausible or inconsistent values (every size at most 2^31), Unsupported for non-default RoPE
// scaling. model_type qwen3_vl_moe fills TextConfig::moe.
ModelConfig parse_model_config(const nlohmann::json& json, const std::string& source);
// The same for a config inside another file (the package manifest): errors name its field path.
ModelConfig parse_model_config(const JsonField& root);
ModelConfig parse_model_config_text(const std::string& text, const std::string& source);
ModelConfig load_model_config(const std::filesystem::path& config_json);

// The 4.57-style config.json (as shipped on the hub) for this configuration (qwen3_vl_moe when
// text.moe is set).
nlohmann::json to_config_json(const ModelConfig& config);

}  // namespace q3vl
