#pragma once
// Checkpoint tensor names and shapes (docs/model-math.md §2): the single map from model structure to the
// names in a Hugging Face Qwen3-VL checkpoint. Validation, random checkpoints and the graph
// builders all take names from here.
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace q3vl::names {

inline constexpr const char* kLmHead = "lm_head.weight";
inline constexpr const char* kEmbedTokens = "model.language_model.embed_tokens.weight";
inline constexpr const char* kFinalNorm = "model.language_model.norm.weight";
inline constexpr const char* kPatchEmbedWeight = "model.visual.patch_embed.proj.weight";
inline constexpr const char* kPatchEmbedBias = "model.visual.patch_embed.proj.bias";
inline constexpr const char* kPositionEmbedding = "model.visual.pos_embed.weight";

// "model.visual.blocks.{block}.{leaf}", e.g. leaf "attn.qkv.weight".
std::string vision_block(std::int64_t block, const std::string& leaf);
// "model.visual.merger.{leaf}", the final patch merger.
std::string merger(const std::string& leaf);
// "model.visual.deepstack_merger_list.{level}.{leaf}".
std::string deepstack_merger(std::int64_t level, const std::string& leaf);
// "model.language_model.layers.{layer}.{leaf}", e.g. leaf "self_attn.q_proj.weight".
std::string text_layer(std::int64_t layer, const std::string& leaf);

// Leaves of a sparse (MoE) layer's MLP: the router (a Linear [E, H]) and the stacked experts
// (3-D, no ".weight"; layouts in model/expert_layout.h). gate_up holds gate then up per expert.
inline constexpr const char* kRouterLeaf = "mlp.gate.weight";
inline constexpr const char* kExpertsGateUpLeaf = "mlp.experts.gate_up_proj";
inline constexpr const char* kExpertsDownLeaf = "mlp.experts.down_proj";

}  // namespace q3vl::names

namespace q3vl {

struct TensorSpec {
  std::string name;
  std::vector<std::int64_t> shape;
  bool required = true;  // lm_head is optional when embeddings are tied
  // What a random checkpoint puts here: norm scales are ones, biases zeros, the rest random.
  enum class Init { Random, Ones, Zeros } init = Init::Random;
  // Another shape the file may have instead (MoE experts in the released [E, in, out] layout).
  std::vector<std::int64_t> alternative_shape;
};

// Every tensor a checkpoint with this config holds, in a stable order (vision, then text).
// Allocates per tensor: call check_config_fits_files first on configs from a user's file.
std::vector<TensorSpec> expected_tensors(const ModelConfig& config);

// How many tensors expected_tensors lists (lm_head included), computed without listing them.
std::uint64_t expected_tensor_count(const ModelConfig& config);

// Refuses a config that declares more than the checkpoint files can hold (e.g. num_hidden_layers
// 1000000000 against a few hundred tensors) before anything proportional to it is allocated:
// the tensors the layer and block counts imply against `tensors_in_files`. Throws InvalidInput
// naming `config_file` and the field.
void check_config_fits_files(const ModelConfig& config, std::uint64_t tensors_in_files, const std::string& config_file);

}  // namespace q3vl
