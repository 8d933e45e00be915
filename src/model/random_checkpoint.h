#pragma once
// Random-weight Qwen3-VL checkpoints in Hugging Face layout (`q3vl make-tiny`): small configs
// for tests and demos, and the real 2B/4B/8B shapes for benchmarks. Weights are streamed to disk
// one tensor at a time, so an 8B checkpoint needs no more memory than a tiny one.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/config.h"

namespace q3vl {

// Names of the presets, e.g. "tiny", "small", "2b", "4b", "8b"; MoE: "moe" (tiny), "30b-a3b" and "235b-a22b".
std::vector<std::string> random_checkpoint_presets();
// The config of a preset; throws InvalidInput for an unknown name.
ModelConfig random_checkpoint_config(const std::string& preset);
// `config` with `layers` text layers (a few-layer checkpoint of real shapes, for benchmarks);
// throws InvalidInput if the result is inconsistent (e.g. fewer layers than DeepStack levels).
ModelConfig with_text_layers(ModelConfig config, std::int64_t layers);

struct RandomCheckpointOptions {
  std::uint64_t seed = 0;
  // Folder with tokenizer.json and tokenizer_config.json (the real Qwen tokenizer).
  std::filesystem::path tokenizer_dir;
  // Shards larger than this are split (HF's sharded layout with model.safetensors.index.json).
  std::uint64_t max_shard_bytes = 4ull << 30;
  bool overwrite = false;  // --force: an existing make-tiny checkpoint at out_dir may be replaced
  bool show_progress = true;
};

// Writes config.json, safetensors weights (bf16), tokenizer, chat template, preprocessor and
// generation configs into `out_dir`. The folder appears only when complete (util/output_dir.h:
// staged in out_dir.partial, locked, marked as ours).
void write_random_checkpoint(const ModelConfig& config, const std::filesystem::path& out_dir,
                             const RandomCheckpointOptions& options);

}  // namespace q3vl
