#include "model/random_checkpoint.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "math/half_float.h"
#include "model/safetensors.h"
#include "model/tensor_names.h"
#include "model/tokenizer_files.h"
#include "q3vl/error.h"
#include "util/assets.h"
#include "util/files.h"
#include "util/output_dir.h"
#include "util/progress.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// HF initializes linear and embedding weights with std = initializer_range (0.02). Uniform noise
// of the same std keeps every layer's activations finite and is much cheaper to draw.
constexpr float kWeightStd = 0.02f;

class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

std::uint64_t name_hash(const std::string& name) {
  std::uint64_t hash = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

ModelConfig base_config() {
  return parse_model_config_text(std::string(assets::get("config.json")), "embedded Qwen3-VL-4B config.json");
}

// Every layer sparse (decoder_sparse_step 1) but `dense_layers`; renormalised top-k.
MoeConfig moe_config(std::int64_t experts, std::int64_t per_token, std::int64_t intermediate,
                     std::vector<std::int64_t> dense_layers) {
  MoeConfig m;
  m.experts = experts;
  m.experts_per_token = per_token;
  m.intermediate_size = intermediate;
  m.mlp_only_layers = std::move(dense_layers);
  return m;
}

// Expert tensors are written as released checkpoints store them ([E, in, out], the alternative
// shape), not in transformers' in-memory layout: what users download, and what llama.cpp's converter
// reads (benchmarks convert these checkpoints).
const std::vector<std::int64_t>& stored_shape(const TensorSpec& spec) {
  return spec.alternative_shape.empty() ? spec.shape : spec.alternative_shape;
}

struct Shard {
  std::vector<SafetensorsWriter::Entry> entries;
  std::vector<const TensorSpec*> specs;
  std::uint64_t bytes = 0;
};

std::vector<Shard> plan_shards(const std::vector<TensorSpec>& specs, std::uint64_t max_bytes) {
  std::vector<Shard> shards(1);
  for (const TensorSpec& spec : specs) {
    if (!spec.required) continue;  // tied lm_head is not stored, as on the hub
    const std::uint64_t bytes = static_cast<std::uint64_t>(checked_element_count(spec.shape).value()) * 2;
    if (!shards.back().entries.empty() && shards.back().bytes + bytes > max_bytes) shards.emplace_back();
    shards.back().entries.push_back({spec.name, DType::BF16, stored_shape(spec)});
    shards.back().specs.push_back(&spec);
    shards.back().bytes += bytes;
  }
  return shards;
}

void write_tensor(SafetensorsWriter& writer, const TensorSpec& spec, std::uint64_t seed, ProgressBar& progress) {
  const std::uint64_t count = static_cast<std::uint64_t>(checked_element_count(spec.shape).value());
  constexpr std::uint64_t kChunk = 1 << 20;
  std::vector<std::uint16_t> buffer(static_cast<std::size_t>(std::min(count, kChunk)));
  SplitMix64 rng(seed ^ name_hash(spec.name));
  const float half_width = kWeightStd * std::sqrt(3.0f);
  const std::uint16_t one = float_to_bf16(1.0f);
  for (std::uint64_t done = 0; done < count;) {
    const std::size_t n = static_cast<std::size_t>(std::min(kChunk, count - done));
    for (std::size_t i = 0; i < n; ++i) {
      switch (spec.init) {
        case TensorSpec::Init::Ones: buffer[i] = one; break;
        case TensorSpec::Init::Zeros: buffer[i] = 0; break;
        case TensorSpec::Init::Random: {
          const float unit = static_cast<float>(rng.next() >> 40) * (1.0f / 16777216.0f);  // [0,1)
          buffer[i] = float_to_bf16((2.0f * unit - 1.0f) * half_width);
          break;
        }
      }
    }
    writer.write({reinterpret_cast<const std::uint8_t*>(buffer.data()), n * 2});
    progress.advance(n * 2);
    done += n;
  }
}

// The 8B and larger models (dense and MoE): an untied lm_head and the 27-block vision tower (1152
// wide), whose merger maps to the text width.
void untied_with_large_vision(ModelConfig& c) {
  c.tie_word_embeddings = false;
  c.vision.depth = 27;
  c.vision.hidden_size = 1152;
  c.vision.intermediate_size = 4304;
  c.vision.out_hidden_size = c.text.hidden_size;
  c.vision.deepstack_visual_indexes = {8, 16, 24};
}

// The released MoE models: 4 key/value heads, 128 experts of which 8 run per token, every layer
// sparse, and the large vision tower. `dense_intermediate` is in their configs though unused.
void released_moe(ModelConfig& c, std::int64_t hidden, std::int64_t layers, std::int64_t heads, std::int64_t dense_intermediate,
                  std::int64_t expert_intermediate) {
  TextConfig& t = c.text;
  t.hidden_size = hidden;
  t.num_hidden_layers = layers;
  t.num_attention_heads = heads;
  t.num_key_value_heads = 4;
  t.intermediate_size = dense_intermediate;
  t.moe = moe_config(128, 8, expert_intermediate, {});
  untied_with_large_vision(c);
}

}  // namespace

std::vector<std::string> random_checkpoint_presets() { return {"tiny", "small", "2b", "4b", "8b", "32b", "moe", "30b-a3b", "235b-a22b"}; }

ModelConfig random_checkpoint_config(const std::string& preset) {
  ModelConfig c = base_config();  // the real 4B config; presets change what differs
  TextConfig& t = c.text;
  VisionConfig& v = c.vision;
  if (preset == "4b") return c;
  if (preset == "2b") {
    t.hidden_size = 2048;
    t.num_hidden_layers = 28;
    t.num_attention_heads = 16;
    t.intermediate_size = 6144;
    v.out_hidden_size = 2048;
  } else if (preset == "8b") {
    t.hidden_size = 4096;
    t.intermediate_size = 12288;
    untied_with_large_vision(c);
  } else if (preset == "32b") {  // Qwen3-VL-32B (docs/model-math.md §1.2; intermediate 25600 as Qwen3-32B's)
    t.hidden_size = 5120;
    t.num_hidden_layers = 64;
    t.num_attention_heads = 64;
    t.intermediate_size = 25600;
    untied_with_large_vision(c);
  } else if (preset == "30b-a3b") {  // Qwen3-VL-30B-A3B's config.json values
    released_moe(c, 2048, 48, 32, 6144, 768);
  } else if (preset == "235b-a22b") {  // Qwen3-VL-235B-A22B's
    released_moe(c, 4096, 94, 64, 12288, 1536);
  } else if (preset == "tiny" || preset == "moe") {
    t.hidden_size = 64;
    t.num_hidden_layers = 4;
    t.num_attention_heads = 4;
    t.num_key_value_heads = 2;
    t.head_dim = 32;
    t.intermediate_size = 128;
    t.mrope_section = {6, 5, 5};
    v.depth = 4;
    v.hidden_size = 64;
    v.num_heads = 4;
    v.intermediate_size = 128;
    v.out_hidden_size = 64;
    v.deepstack_visual_indexes = {1, 2, 3};
    if (preset == "moe") {  // tiny with 8 experts, top-2, and one dense layer (mlp_only_layers)
      t.moe = moe_config(8, 2, 32, {2});
    }
  } else if (preset == "small") {
    t.hidden_size = 256;
    t.num_hidden_layers = 8;
    t.num_attention_heads = 8;
    t.num_key_value_heads = 4;
    t.head_dim = 64;
    t.intermediate_size = 768;
    t.mrope_section = {12, 10, 10};
    v.depth = 8;
    v.hidden_size = 128;
    v.num_heads = 4;
    v.intermediate_size = 512;
    v.out_hidden_size = 256;
    v.deepstack_visual_indexes = {2, 4, 6};
  } else {
    std::string known;
    for (const std::string& name : random_checkpoint_presets()) known += (known.empty() ? "" : ", ") + name;
    throw InvalidInput("unknown preset \"" + preset + "\" (known: " + known + ")");
  }
  // Re-validate through the parser so a preset can never be an inconsistent config.
  return parse_model_config(to_config_json(c), "preset " + preset);
}

ModelConfig with_text_layers(ModelConfig config, std::int64_t layers) {
  config.text.num_hidden_layers = layers;
  return parse_model_config(to_config_json(config), "--layers " + std::to_string(layers));
}

void write_random_checkpoint(const ModelConfig& config, const fs::path& out_dir,
                             const RandomCheckpointOptions& options) {
  OutputDir out(out_dir, {.kind = "checkpoint",
                          .option = "--out",
                          .replace = options.overwrite,
                          .inputs = {{options.tokenizer_dir, "the tokenizer folder (--tokenizer-dir)"}}});
  const fs::path& stage = out.begin(WriteMode::Replace);  // removed again if anything below throws
  write_text_file(stage / "config.json", to_config_json(config).dump(2));
  for (const char* name : {"generation_config.json", "preprocessor_config.json",
                           "video_preprocessor_config.json", "chat_template.json"}) {
    write_text_file(stage / name, std::string(assets::get(name)));
  }
  write_tokenizer_files(options.tokenizer_dir, reference_chat_template(), stage, {{"model_max_length", 262144}});

  const std::vector<TensorSpec> specs = expected_tensors(config);
  const std::vector<Shard> shards = plan_shards(specs, options.max_shard_bytes);
  std::uint64_t total = 0;
  for (const Shard& shard : shards) total += shard.bytes;
  ProgressBar progress("writing weights", total, options.show_progress);
  json weight_map = json::object();
  for (std::size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    const std::string file = shards.size() == 1 ? "model.safetensors" : name;
    SafetensorsWriter writer(stage / file, shards[s].entries);
    for (const TensorSpec* spec : shards[s].specs) {
      write_tensor(writer, *spec, options.seed, progress);
      weight_map[spec->name] = file;
    }
    writer.finish();
  }
  progress.finish();
  if (shards.size() > 1) {
    const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_text_file(stage / "model.safetensors.index.json", index.dump(2));
  }
  out.commit();
}

}  // namespace q3vl
