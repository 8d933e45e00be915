#include "model/tensor_names.h"

#include "model/expert_layout.h"
#include "q3vl/error.h"

namespace q3vl::names {

std::string vision_block(std::int64_t block, const std::string& leaf) {
  return "model.visual.blocks." + std::to_string(block) + "." + leaf;
}
std::string merger(const std::string& leaf) { return "model.visual.merger." + leaf; }
std::string deepstack_merger(std::int64_t level, const std::string& leaf) {
  return "model.visual.deepstack_merger_list." + std::to_string(level) + "." + leaf;
}
std::string text_layer(std::int64_t layer, const std::string& leaf) {
  return "model.language_model.layers." + std::to_string(layer) + "." + leaf;
}

}  // namespace q3vl::names

namespace q3vl {

namespace {

using Init = TensorSpec::Init;

void add(std::vector<TensorSpec>& out, std::string name, std::vector<std::int64_t> shape, Init init = Init::Random) {
  out.push_back(TensorSpec{std::move(name), std::move(shape), true, init, {}});
}

void add_vision_block(std::vector<TensorSpec>& out, const VisionConfig& v, std::int64_t i) {
  const std::int64_t D = v.hidden_size;
  add(out, names::vision_block(i, "norm1.weight"), {D}, Init::Ones);
  add(out, names::vision_block(i, "norm1.bias"), {D}, Init::Zeros);
  add(out, names::vision_block(i, "norm2.weight"), {D}, Init::Ones);
  add(out, names::vision_block(i, "norm2.bias"), {D}, Init::Zeros);
  add(out, names::vision_block(i, "attn.qkv.weight"), {3 * D, D});
  add(out, names::vision_block(i, "attn.qkv.bias"), {3 * D}, Init::Zeros);
  add(out, names::vision_block(i, "attn.proj.weight"), {D, D});
  add(out, names::vision_block(i, "attn.proj.bias"), {D}, Init::Zeros);
  add(out, names::vision_block(i, "mlp.linear_fc1.weight"), {v.intermediate_size, D});
  add(out, names::vision_block(i, "mlp.linear_fc1.bias"), {v.intermediate_size}, Init::Zeros);
  add(out, names::vision_block(i, "mlp.linear_fc2.weight"), {D, v.intermediate_size});
  add(out, names::vision_block(i, "mlp.linear_fc2.bias"), {D}, Init::Zeros);
}

// A patch merger: `name_of` gives the full name of each of its tensors.
template <typename NameOf>
void add_merger(std::vector<TensorSpec>& out, const VisionConfig& v, NameOf name_of, std::int64_t norm_size) {
  const std::int64_t merged = v.hidden_size * v.spatial_merge_size * v.spatial_merge_size;
  add(out, name_of("norm.weight"), {norm_size}, Init::Ones);
  add(out, name_of("norm.bias"), {norm_size}, Init::Zeros);
  add(out, name_of("linear_fc1.weight"), {merged, merged});
  add(out, name_of("linear_fc1.bias"), {merged}, Init::Zeros);
  add(out, name_of("linear_fc2.weight"), {v.out_hidden_size, merged});
  add(out, name_of("linear_fc2.bias"), {v.out_hidden_size}, Init::Zeros);
}

void add_vision_tensors(std::vector<TensorSpec>& out, const VisionConfig& v) {
  const std::int64_t D = v.hidden_size;
  const std::int64_t merged = D * v.spatial_merge_size * v.spatial_merge_size;
  add(out, names::kPatchEmbedWeight, {D, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size});
  add(out, names::kPatchEmbedBias, {D}, Init::Zeros);
  add(out, names::kPositionEmbedding, {v.num_position_embeddings, D});
  for (std::int64_t i = 0; i < v.depth; ++i) add_vision_block(out, v, i);
  add_merger(out, v, [](const std::string& leaf) { return names::merger(leaf); }, D);  // norm before 2x2 concat
  for (std::size_t j = 0; j < v.deepstack_visual_indexes.size(); ++j) {
    add_merger(
        out, v, [j](const std::string& leaf) { return names::deepstack_merger(static_cast<std::int64_t>(j), leaf); },
        merged);  // norm after the concat
  }
}

// Router and experts; the expert tensors are listed in transformers 5's layout, the released one
// accepted too. As many tensors as the dense MLP (3), so the per-layer count stays one constant.
void add_sparse_mlp(std::vector<TensorSpec>& out, const TextConfig& t, std::int64_t l) {
  const std::int64_t H = t.hidden_size;
  const MoeConfig& m = *t.moe;
  add(out, names::text_layer(l, names::kRouterLeaf), {m.experts, H});
  auto add_experts = [&](const char* leaf, std::int64_t rows, std::int64_t cols) {
    add(out, names::text_layer(l, leaf), expert_tensor_shape(ExpertLayout::OutIn, m.experts, rows, cols));
    out.back().alternative_shape = expert_tensor_shape(ExpertLayout::InOut, m.experts, rows, cols);
  };
  add_experts(names::kExpertsGateUpLeaf, 2 * m.intermediate_size, H);
  add_experts(names::kExpertsDownLeaf, H, m.intermediate_size);
}

void add_text_layer(std::vector<TensorSpec>& out, const TextConfig& t, std::int64_t l) {
  const std::int64_t H = t.hidden_size;
  const std::int64_t q_size = t.num_attention_heads * t.head_dim;
  const std::int64_t kv_size = t.num_key_value_heads * t.head_dim;
  add(out, names::text_layer(l, "input_layernorm.weight"), {H}, Init::Ones);
  add(out, names::text_layer(l, "post_attention_layernorm.weight"), {H}, Init::Ones);
  add(out, names::text_layer(l, "self_attn.q_proj.weight"), {q_size, H});
  add(out, names::text_layer(l, "self_attn.k_proj.weight"), {kv_size, H});
  add(out, names::text_layer(l, "self_attn.v_proj.weight"), {kv_size, H});
  add(out, names::text_layer(l, "self_attn.o_proj.weight"), {H, q_size});
  add(out, names::text_layer(l, "self_attn.q_norm.weight"), {t.head_dim}, Init::Ones);
  add(out, names::text_layer(l, "self_attn.k_norm.weight"), {t.head_dim}, Init::Ones);
  if (t.sparse_layer(l)) {
    add_sparse_mlp(out, t, l);
    return;
  }
  add(out, names::text_layer(l, "mlp.gate_proj.weight"), {t.intermediate_size, H});
  add(out, names::text_layer(l, "mlp.up_proj.weight"), {t.intermediate_size, H});
  add(out, names::text_layer(l, "mlp.down_proj.weight"), {H, t.intermediate_size});
}

void add_text_tensors(std::vector<TensorSpec>& out, const ModelConfig& config) {
  const TextConfig& t = config.text;
  add(out, names::kEmbedTokens, {t.vocab_size, t.hidden_size});
  for (std::int64_t l = 0; l < t.num_hidden_layers; ++l) add_text_layer(out, t, l);
  add(out, names::kFinalNorm, {t.hidden_size}, Init::Ones);
  out.push_back(TensorSpec{names::kLmHead, {t.vocab_size, t.hidden_size}, !config.tie_word_embeddings, Init::Random, {}});
}

}  // namespace

std::vector<TensorSpec> expected_tensors(const ModelConfig& config) {
  std::vector<TensorSpec> out;
  add_vision_tensors(out, config.vision);
  add_text_tensors(out, config);
  return out;
}

namespace {

// Tensors per repeated unit, as listed by expected_tensors.
constexpr std::uint64_t kPerVisionBlock = 12;
constexpr std::uint64_t kPerMerger = 6;
constexpr std::uint64_t kPerTextLayer = 11;  // a sparse layer too: router + 2 expert tensors for 3 MLP weights
constexpr std::uint64_t kFixed = 3 + kPerMerger + 1 + 1 + 1;  // patch embed w/b, pos embed, merger, embed, norm, lm_head

}  // namespace

std::uint64_t expected_tensor_count(const ModelConfig& config) {
  // Sizes are at most 2^31 (parse_model_config), so these products cannot overflow.
  return kFixed + kPerVisionBlock * static_cast<std::uint64_t>(config.vision.depth) +
         kPerMerger * config.vision.deepstack_visual_indexes.size() +
         kPerTextLayer * static_cast<std::uint64_t>(config.text.num_hidden_layers);
}

void check_config_fits_files(const ModelConfig& config, std::uint64_t tensors_in_files, const std::string& config_file) {
  auto refuse = [&](const std::string& field, std::int64_t value, std::uint64_t per_unit) {
    throw InvalidInput(config_file + ": " + field + " = " + std::to_string(value) + " needs " +
                       std::to_string(per_unit * static_cast<std::uint64_t>(value)) +
                       " tensors, but the checkpoint's safetensors files hold only " + std::to_string(tensors_in_files) +
                       " (wrong config.json for these weights?)");
  };
  if (kPerTextLayer * static_cast<std::uint64_t>(config.text.num_hidden_layers) > tensors_in_files) {
    refuse("text_config.num_hidden_layers", config.text.num_hidden_layers, kPerTextLayer);
  }
  if (kPerVisionBlock * static_cast<std::uint64_t>(config.vision.depth) > tensors_in_files) {
    refuse("vision_config.depth", config.vision.depth, kPerVisionBlock);
  }
  // With these two bounded, the whole list is at most a few times the file's tensor count
  // (DeepStack levels cannot outnumber the vision blocks); missing tensors are named later.
}

}  // namespace q3vl

