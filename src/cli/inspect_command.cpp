// `q3vl inspect`: open and fully validate a Hugging Face Qwen3-VL checkpoint, print a summary.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "export/input_checks.h"
#include "model/checkpoint.h"
#include "model/tensor_names.h"
#include "util/progress.h"

namespace q3vl::cli {
namespace {

std::string join(const std::vector<std::int64_t>& values) {
  std::string out;
  for (std::int64_t v : values) out += (out.empty() ? "" : ",") + std::to_string(v);
  return out;
}

void run_inspect(const std::string& model_dir) {
  const Checkpoint ckpt = Checkpoint::open(model_dir);
  const ModelConfig& c = ckpt.config();
  std::printf("checkpoint      %s (%zu shard%s, %s of tensors)\n", model_dir.c_str(), ckpt.shard_paths().size(),
              ckpt.shard_paths().size() == 1 ? "" : "s", format_bytes(ckpt.weight_bytes()).c_str());
  std::printf("text decoder    %lld layers, hidden %lld, heads %lld/%lld kv, head_dim %lld, mlp %lld, vocab %lld\n",
              static_cast<long long>(c.text.num_hidden_layers), static_cast<long long>(c.text.hidden_size),
              static_cast<long long>(c.text.num_attention_heads), static_cast<long long>(c.text.num_key_value_heads),
              static_cast<long long>(c.text.head_dim), static_cast<long long>(c.text.intermediate_size),
              static_cast<long long>(c.text.vocab_size));
  if (c.text.moe) {
    const MoeConfig& m = *c.text.moe;
    std::int64_t sparse = 0;
    for (std::int64_t l = 0; l < c.text.num_hidden_layers; ++l) sparse += c.text.sparse_layer(l) ? 1 : 0;
    std::printf("experts (MoE)   %lld of %lld layers sparse: %lld experts, %lld per token, expert mlp %lld%s\n",
                static_cast<long long>(sparse), static_cast<long long>(c.text.num_hidden_layers), static_cast<long long>(m.experts),
                static_cast<long long>(m.experts_per_token), static_cast<long long>(m.intermediate_size),
                m.mlp_only_layers.empty() ? "" : (", dense layers [" + join(m.mlp_only_layers) + "]").c_str());
  }
  std::printf("rope            theta %.17g, mrope_section [%s] (interleaved)\n", c.text.rope_theta,
              join(c.text.mrope_section).c_str());
  std::printf("vision encoder  %lld blocks, hidden %lld, heads %lld, mlp %lld, deepstack after blocks [%s]\n",
              static_cast<long long>(c.vision.depth), static_cast<long long>(c.vision.hidden_size),
              static_cast<long long>(c.vision.num_heads), static_cast<long long>(c.vision.intermediate_size),
              join(c.vision.deepstack_visual_indexes).c_str());
  std::printf("embeddings      %s\n", c.tie_word_embeddings
                                          ? (ckpt.has(names::kLmHead) ? "tied (lm_head stored, identical)" : "tied")
                                          : "untied");
  std::printf("tensors         all %zu expected tensors present with the right shapes\n",
              ckpt.tensor_names().size() - ckpt.unexpected_tensors().size());
  for (const std::string& name : ckpt.unexpected_tensors()) std::printf("  extra tensor (ignored): %s\n", name.c_str());
  // The files build reads besides the weights; errors end the command like any checkpoint error.
  const std::vector<std::string> notes = check_checkpoint_files(ckpt, PackageOptions{}, false);
  std::printf("other files     tokenizer, chat template, generation, preprocessor and video preprocessor configs checked\n");
  for (const std::string& note : notes) std::printf("  note: %s\n", note.c_str());
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto model_dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("inspect", "Validate a Hugging Face Qwen3-VL checkpoint and summarize it");
  cmd->add_option("--model", *model_dir, "Checkpoint folder (config.json + safetensors)")->required();
  cmd->callback([model_dir] { run_inspect(*model_dir); });
}

}  // namespace q3vl::cli
