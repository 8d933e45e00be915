#include "model/config.h"

#include <cmath>
#include <numeric>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "util/files.h"

namespace q3vl {
namespace {

using nlohmann::json;

class FieldReader {
 public:
  FieldReader(const json& object, std::string where) : object_(object), where_(std::move(where)) {
    if (!object_.is_object()) throw InvalidInput(where_ + ": expected a JSON object");
  }

  bool has(const char* key) const { return object_.contains(key) && !object_.at(key).is_null(); }

  std::int64_t integer(const char* key) const {
    const json& value = require(key);
    if (!value.is_number_integer()) fail(key, "expected an integer, got " + value.dump());
    return value.get<std::int64_t>();
  }
  std::int64_t integer(const char* key, std::int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
  }
  std::int64_t positive(const char* key) const {
    const std::int64_t value = integer(key);
    if (value <= 0) fail(key, "must be positive, got " + std::to_string(value));
    return value;
  }
  std::int64_t positive(const char* key, std::int64_t fallback) const {
    return has(key) ? positive(key) : fallback;
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& value = object_.at(key);
    if (!value.is_number()) fail(key, "expected a number, got " + value.dump());
    return value.get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& value = object_.at(key);
    if (!value.is_boolean()) fail(key, "expected true or false, got " + value.dump());
    return value.get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& value = object_.at(key);
    if (!value.is_string()) fail(key, "expected a string, got " + value.dump());
    return value.get<std::string>();
  }
  std::vector<std::int64_t> integers(const char* key) const {
    const json& value = require(key);
    if (!value.is_array()) fail(key, "expected an array of integers, got " + value.dump());
    std::vector<std::int64_t> out;
    for (const json& item : value) {
      if (!item.is_number_integer()) fail(key, "expected an array of integers, got " + value.dump());
      out.push_back(item.get<std::int64_t>());
    }
    return out;
  }
  // Token ids may be an int or a list (eos in generation configs); the first one is kept.
  std::int64_t token_id(const char* key, std::int64_t fallback) const {
    if (!has(key)) return fallback;
    const json& value = object_.at(key);
    if (value.is_array() && !value.empty() && value.front().is_number_integer()) {
      return value.front().get<std::int64_t>();
    }
    return integer(key);
  }
  FieldReader child(const char* key) const { return FieldReader(require(key), where_ + "." + key); }

  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw InvalidInput(where_ + "." + key + ": " + what);
  }

 private:
  const json& require(const char* key) const {
    if (!has(key)) throw InvalidInput(where_ + ": missing field \"" + key + "\"");
    return object_.at(key);
  }

  const json& object_;
  std::string where_;
};

void read_rope(const FieldReader& text, TextConfig& out) {
  // v5: rope_parameters {rope_type, rope_theta, mrope_section}; 4.57: rope_theta + rope_scaling.
  std::string rope_type = "default";
  if (text.has("rope_parameters")) {
    const FieldReader rope = text.child("rope_parameters");
    rope_type = rope.string("rope_type", rope.string("type", "default"));
    out.rope_theta = rope.number("rope_theta", text.number("rope_theta", out.rope_theta));
    out.mrope_section = rope.has("mrope_section") ? rope.integers("mrope_section")
                                                  : std::vector<std::int64_t>{24, 20, 20};
  } else {
    out.rope_theta = text.number("rope_theta", out.rope_theta);
    out.mrope_section = {24, 20, 20};
    if (text.has("rope_scaling")) {
      const FieldReader rope = text.child("rope_scaling");
      rope_type = rope.string("rope_type", rope.string("type", "default"));
      if (rope.has("mrope_section")) out.mrope_section = rope.integers("mrope_section");
    }
  }
  if (rope_type != "default") {
    throw Unsupported("text_config: rope_type \"" + rope_type +
                      "\" is not supported (only \"default\" multimodal RoPE)");
  }
}

void check(bool ok, const std::string& source, const std::string& what) {
  if (!ok) throw InvalidInput(source + ": " + what);
}

void validate(const ModelConfig& c, const std::string& source) {
  const TextConfig& t = c.text;
  const VisionConfig& v = c.vision;
  check(t.num_attention_heads % t.num_key_value_heads == 0, source,
        "text_config.num_attention_heads (" + std::to_string(t.num_attention_heads) +
            ") is not a multiple of num_key_value_heads (" +
            std::to_string(t.num_key_value_heads) + ")");
  check(t.head_dim % 2 == 0, source, "text_config.head_dim must be even");
  check(t.mrope_section.size() == 3, source, "mrope_section must have 3 entries (T, H, W)");
  for (std::int64_t s : t.mrope_section) check(s >= 0, source, "mrope_section entries must be >= 0");
  const std::int64_t rope_slots =
      std::accumulate(t.mrope_section.begin(), t.mrope_section.end(), std::int64_t{0});
  check(rope_slots == t.head_dim / 2, source,
        "mrope_section sums to " + std::to_string(rope_slots) + " but head_dim / 2 is " +
            std::to_string(t.head_dim / 2));
  // Interleaving puts H at slots 1, 4, .. < 3*H and W at 2, 5, .. < 3*W; they must fit in the
  // head_dim / 2 rotary slots (HF would silently clip a slice that does not).
  check(3 * t.mrope_section[1] <= t.head_dim / 2 && 3 * t.mrope_section[2] <= t.head_dim / 2, source,
        "mrope_section: 3 * the H and W sections must fit in head_dim / 2 (interleaved layout)");
  check(t.hidden_act == "silu", source, "text_config.hidden_act \"" + t.hidden_act + "\" is not silu");
  check(!(t.rms_norm_eps <= 0.0), source, "text_config.rms_norm_eps must be positive");
  check(v.hidden_size % v.num_heads == 0, source,
        "vision_config.hidden_size is not a multiple of num_heads");
  check(v.head_dim() % 4 == 0, source,
        "vision head dim " + std::to_string(v.head_dim()) + " must be a multiple of 4 (2-D RoPE)");
  check(v.out_hidden_size == t.hidden_size, source,
        "vision_config.out_hidden_size (" + std::to_string(v.out_hidden_size) +
            ") differs from text_config.hidden_size (" + std::to_string(t.hidden_size) + ")");
  check(v.spatial_merge_size == 2, source, "vision_config.spatial_merge_size must be 2");
  check(v.in_channels == 3, source, "vision_config.in_channels must be 3");
  const std::int64_t side = v.position_grid_side();
  check(side * side == v.num_position_embeddings, source,
        "vision_config.num_position_embeddings (" + std::to_string(v.num_position_embeddings) +
            ") is not a perfect square");
  check(static_cast<std::int64_t>(v.deepstack_visual_indexes.size()) <= t.num_hidden_layers, source,
        "more DeepStack levels than decoder layers");
  for (std::size_t i = 0; i < v.deepstack_visual_indexes.size(); ++i) {
    const std::int64_t index = v.deepstack_visual_indexes[i];
    check(index >= 0 && index < v.depth, source,
          "deepstack_visual_indexes entry " + std::to_string(index) + " is outside the " +
              std::to_string(v.depth) + " vision blocks");
    check(i == 0 || index > v.deepstack_visual_indexes[i - 1], source,
          "deepstack_visual_indexes must be strictly increasing");
  }
  check(v.hidden_act == "gelu_pytorch_tanh", source,
        "vision_config.hidden_act \"" + v.hidden_act + "\" is not gelu_pytorch_tanh");
  for (std::int64_t id : {c.image_token_id, c.video_token_id, c.vision_start_token_id,
                          c.vision_end_token_id}) {
    check(id >= 0 && id < t.vocab_size, source,
          "special token id " + std::to_string(id) + " is outside the vocabulary of " +
              std::to_string(t.vocab_size));
  }
}

}  // namespace

std::int64_t VisionConfig::position_grid_side() const {
  return static_cast<std::int64_t>(std::sqrt(static_cast<double>(num_position_embeddings)));
}

ModelConfig parse_model_config(const json& root_json, const std::string& source) {
  const FieldReader root(root_json, source);
  const std::string model_type = root.string("model_type", "");
  if (model_type == "qwen3_vl_moe") {
    throw Unsupported(source + ": Qwen3-VL MoE checkpoints (qwen3_vl_moe) are not supported yet");
  }
  if (model_type != "qwen3_vl") {
    throw InvalidInput(source + ": model_type is \"" + model_type + "\", expected \"qwen3_vl\"");
  }
  ModelConfig c;
  const FieldReader text = root.child("text_config");
  TextConfig& t = c.text;
  t.vocab_size = text.positive("vocab_size");
  t.hidden_size = text.positive("hidden_size");
  t.intermediate_size = text.positive("intermediate_size");
  t.num_hidden_layers = text.positive("num_hidden_layers");
  t.num_attention_heads = text.positive("num_attention_heads");
  t.num_key_value_heads = text.positive("num_key_value_heads", t.num_attention_heads);
  t.head_dim = text.positive("head_dim", t.hidden_size / t.num_attention_heads);
  t.max_position_embeddings = text.positive("max_position_embeddings", 262144);
  t.rms_norm_eps = text.number("rms_norm_eps", 1e-6);
  t.attention_bias = text.boolean("attention_bias", false);
  t.hidden_act = text.string("hidden_act", "silu");
  t.bos_token_id = text.token_id("bos_token_id", -1);
  t.eos_token_id = text.token_id("eos_token_id", -1);
  if (t.attention_bias) throw Unsupported(source + ": text_config.attention_bias = true");
  read_rope(text, t);

  const FieldReader vision = root.child("vision_config");
  VisionConfig& v = c.vision;
  v.depth = vision.positive("depth");
  v.hidden_size = vision.positive("hidden_size");
  v.intermediate_size = vision.positive("intermediate_size");
  v.num_heads = vision.positive("num_heads");
  v.in_channels = vision.positive("in_channels", 3);
  v.patch_size = vision.positive("patch_size", 16);
  v.temporal_patch_size = vision.positive("temporal_patch_size", 2);
  v.spatial_merge_size = vision.positive("spatial_merge_size", 2);
  v.out_hidden_size = vision.positive("out_hidden_size");
  v.num_position_embeddings = vision.positive("num_position_embeddings", 2304);
  v.deepstack_visual_indexes = vision.has("deepstack_visual_indexes")
                                   ? vision.integers("deepstack_visual_indexes")
                                   : std::vector<std::int64_t>{8, 16, 24};
  v.hidden_act = vision.string("hidden_act", "gelu_pytorch_tanh");

  c.image_token_id = root.integer("image_token_id", 151655);
  c.video_token_id = root.integer("video_token_id", 151656);
  c.vision_start_token_id = root.integer("vision_start_token_id", 151652);
  c.vision_end_token_id = root.integer("vision_end_token_id", 151653);
  // Top level wins (HF ties from the outer config); older files carry it only in text_config.
  c.tie_word_embeddings = root.boolean("tie_word_embeddings", text.boolean("tie_word_embeddings", false));
  validate(c, source);
  return c;
}

ModelConfig parse_model_config_text(const std::string& text, const std::string& source) {
  json parsed;
  try {
    parsed = json::parse(text);
  } catch (const json::exception& e) {
    throw InvalidInput(source + ": not valid JSON (" + e.what() + ")");
  }
  return parse_model_config(parsed, source);
}

ModelConfig load_model_config(const std::filesystem::path& config_json) {
  return parse_model_config_text(read_text_file(config_json), config_json.string());
}

json to_config_json(const ModelConfig& c) {
  const TextConfig& t = c.text;
  const VisionConfig& v = c.vision;
  json text = {
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"bos_token_id", t.bos_token_id},
      {"dtype", "bfloat16"},
      {"eos_token_id", t.eos_token_id},
      {"head_dim", t.head_dim},
      {"hidden_act", t.hidden_act},
      {"hidden_size", t.hidden_size},
      {"initializer_range", 0.02},
      {"intermediate_size", t.intermediate_size},
      {"max_position_embeddings", t.max_position_embeddings},
      {"model_type", "qwen3_vl_text"},
      {"num_attention_heads", t.num_attention_heads},
      {"num_hidden_layers", t.num_hidden_layers},
      {"num_key_value_heads", t.num_key_value_heads},
      {"rms_norm_eps", t.rms_norm_eps},
      {"rope_scaling",
       {{"mrope_interleaved", true}, {"mrope_section", t.mrope_section}, {"rope_type", "default"}}},
      {"rope_theta", t.rope_theta},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"use_cache", true},
      {"vocab_size", t.vocab_size},
  };
  json vision = {
      {"deepstack_visual_indexes", v.deepstack_visual_indexes},
      {"depth", v.depth},
      {"hidden_act", v.hidden_act},
      {"hidden_size", v.hidden_size},
      {"in_channels", v.in_channels},
      {"initializer_range", 0.02},
      {"intermediate_size", v.intermediate_size},
      {"model_type", "qwen3_vl"},
      {"num_heads", v.num_heads},
      {"num_position_embeddings", v.num_position_embeddings},
      {"out_hidden_size", v.out_hidden_size},
      {"patch_size", v.patch_size},
      {"spatial_merge_size", v.spatial_merge_size},
      {"temporal_patch_size", v.temporal_patch_size},
  };
  return json{
      {"architectures", {"Qwen3VLForConditionalGeneration"}},
      {"image_token_id", c.image_token_id},
      {"model_type", "qwen3_vl"},
      {"text_config", text},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"transformers_version", "4.57.0.dev0"},
      {"video_token_id", c.video_token_id},
      {"vision_config", vision},
      {"vision_end_token_id", c.vision_end_token_id},
      {"vision_start_token_id", c.vision_start_token_id},
  };
}

}  // namespace q3vl
