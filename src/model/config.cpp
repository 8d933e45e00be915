#include "model/config.h"

#include <cmath>
#include <algorithm>
#include <optional>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "math/mrope.h"
#include "util/files.h"
#include "util/json_fields.h"

namespace q3vl {
namespace {

using nlohmann::json;

// No released or plausible model comes near this; it keeps every product of two sizes inside int64.
constexpr std::int64_t kMaxSize = std::int64_t{1} << 31;

std::int64_t size_field(const JsonField& field) {
  const std::int64_t value = field.integer();
  if (value <= 0) field.fail("must be a positive integer, got " + std::to_string(value));
  if (value > kMaxSize) field.fail(std::to_string(value) + " is implausibly large (at most " + std::to_string(kMaxSize) + ")");
  return value;
}
std::int64_t size_field(const JsonField& object, const char* key) { return size_field(object.at(key)); }
std::int64_t size_field(const JsonField& object, const char* key, std::int64_t fallback) {
  const auto field = object.find(key);
  return field ? size_field(*field) : fallback;
}

// Token ids may be an int or a list (eos in generation configs); the first one is kept.
std::int64_t token_id(const JsonField& object, const char* key, std::int64_t fallback) {
  const auto field = object.find(key);
  if (!field) return fallback;
  if (field->value().is_array()) {
    const std::vector<std::int64_t> ids = field->integers(1024);
    return ids.empty() ? fallback : ids.front();
  }
  return field->integer();
}

void read_rope_theta(const JsonField& field, TextConfig& out) {
  out.rope_theta = field.number();
  if (!(out.rope_theta > 0.0)) field.fail("must be a positive number, got " + field.value().dump());
  // torch computes theta ** (2j / head_dim) in float32: a theta that rounds to 0 or infinity
  // there gives infinite or NaN angles (all-NaN logits).
  for (float inv : mrope::inverse_frequencies(out.rope_theta, std::min<std::int64_t>(out.head_dim, 4096))) {
    if (!std::isfinite(inv) || !(static_cast<float>(out.rope_theta) > 0.0f)) {
      field.fail(field.value().dump() + " gives infinite or NaN rotary frequencies in float32");
    }
  }
}

void read_mrope_section(const JsonField& field, TextConfig& out) {
  // HF reads entries 1 and 2 only (as Python slice stops), so more than 3 entries are accepted.
  out.mrope_section = field.integers(64);
  if (out.mrope_section.size() < 3) {
    field.fail("needs 3 entries (T, H, W), got " + std::to_string(out.mrope_section.size()));
  }
}

void read_rope(const JsonField& text, TextConfig& out) {
  // v5: rope_parameters {rope_type, rope_theta, mrope_section}; 4.57: rope_theta + rope_scaling.
  // HF's defaults when absent: theta 500000 (Qwen3VLTextConfig.default_theta), section [24, 20, 20].
  std::string rope_type = "default";
  out.rope_theta = 500000.0;
  out.mrope_section = {24, 20, 20};
  std::optional<JsonField> theta = text.find("rope_theta");
  const auto rope = text.has("rope_parameters") ? text.find("rope_parameters") : text.find("rope_scaling");
  if (rope) {
    rope->require_object();
    rope_type = rope->string("rope_type", rope->string("type", "default"));
    if (text.has("rope_parameters") && rope->has("rope_theta")) theta = rope->at("rope_theta");
    if (const auto section = rope->find("mrope_section")) read_mrope_section(*section, out);
  }
  if (rope_type != "default") {
    throw Unsupported(text.file() + ": field \"" + rope->path() + ".rope_type\": \"" + rope_type +
                      "\" is not supported (only \"default\" multimodal RoPE)");
  }
  if (theta) read_rope_theta(*theta, out);
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
  check(t.head_dim % 2 == 0, source, "text_config.head_dim (" + std::to_string(t.head_dim) + ") must be even");
  check(v.hidden_size % v.num_heads == 0, source,
        "vision_config.hidden_size (" + std::to_string(v.hidden_size) + ") is not a multiple of num_heads (" +
            std::to_string(v.num_heads) + ")");
  check(v.head_dim() % 4 == 0, source,
        "vision head dim " + std::to_string(v.head_dim()) + " must be a multiple of 4 (2-D RoPE)");
  check(v.out_hidden_size == t.hidden_size, source,
        "vision_config.out_hidden_size (" + std::to_string(v.out_hidden_size) +
            ") differs from text_config.hidden_size (" + std::to_string(t.hidden_size) + ")");
  check(v.spatial_merge_size == 2, source, "vision_config.spatial_merge_size must be 2");
  check(v.in_channels == 3, source, "vision_config.in_channels must be 3");
  // One flattened patch (C * Tp * P * P) and the merged width (4 * D) must stay far from overflow.
  check(v.patch_size <= 1024 && v.temporal_patch_size <= 1024, source,
        "vision_config.patch_size and temporal_patch_size must be at most 1024");
  const std::int64_t side = v.position_grid_side();
  check(side * side == v.num_position_embeddings, source,
        "vision_config.num_position_embeddings (" + std::to_string(v.num_position_embeddings) +
            ") is not a perfect square");
  check(static_cast<std::int64_t>(v.deepstack_visual_indexes.size()) <= t.num_hidden_layers, source,
        "vision_config.deepstack_visual_indexes has more DeepStack levels than text_config.num_hidden_layers");
  for (std::size_t i = 0; i < v.deepstack_visual_indexes.size(); ++i) {
    const std::int64_t index = v.deepstack_visual_indexes[i];
    check(index >= 0 && index < v.depth, source,
          "vision_config.deepstack_visual_indexes entry " + std::to_string(index) + " is outside the " +
              std::to_string(v.depth) + " vision blocks (vision_config.depth)");
    check(i == 0 || index > v.deepstack_visual_indexes[i - 1], source,
          "vision_config.deepstack_visual_indexes must be strictly increasing");
  }
  for (const auto& [name, id] : {std::pair{"image_token_id", c.image_token_id}, std::pair{"video_token_id", c.video_token_id},
                                 std::pair{"vision_start_token_id", c.vision_start_token_id},
                                 std::pair{"vision_end_token_id", c.vision_end_token_id}}) {
    check(id >= 0 && id < t.vocab_size, source,
          std::string(name) + " " + std::to_string(id) + " is outside the vocabulary of " +
              std::to_string(t.vocab_size) + " (text_config.vocab_size)");
  }
}

// True for Qwen3-VL MoE (qwen3_vl_moe), false for dense Qwen3-VL.
bool is_moe_model_type(const JsonField& root) {
  const std::string model_type = root.string("model_type", "");
  if (model_type == "qwen3_vl_moe") return true;
  if (model_type != "qwen3_vl") {
    throw InvalidInput(root.file() + ": model_type is \"" + model_type + "\", expected \"qwen3_vl\" or \"qwen3_vl_moe\"");
  }
  return false;
}

// A count that may be zero (num_experts: 0 leaves every layer dense, as in HF).
std::int64_t count_field(const JsonField& field) {
  const std::int64_t value = field.integer();
  if (value < 0) field.fail("must not be negative, got " + std::to_string(value));
  if (value > kMaxSize) field.fail(std::to_string(value) + " is implausibly large (at most " + std::to_string(kMaxSize) + ")");
  return value;
}

// The MoE fields of text_config; absent ones take Qwen3VLMoeTextConfig's defaults (transformers 5.12).
MoeConfig read_moe_config(const JsonField& text, std::int64_t layers) {
  MoeConfig m;
  // transformers 5 maps num_experts to num_local_experts (attribute_map) and saves that name.
  if (const auto experts = text.has("num_experts") ? text.find("num_experts") : text.find("num_local_experts")) {
    m.experts = count_field(*experts);
  } else {
    m.experts = 60;
  }
  m.experts_per_token = size_field(text, "num_experts_per_tok", 4);
  m.intermediate_size = size_field(text, "moe_intermediate_size", 1408);
  m.sparse_step = size_field(text, "decoder_sparse_step", 1);
  if (const auto only = text.find("mlp_only_layers")) {
    m.mlp_only_layers = only->integers(static_cast<std::size_t>(layers));
    for (std::int64_t layer : m.mlp_only_layers) {
      if (layer < 0 || layer >= layers) {
        only->fail("entry " + std::to_string(layer) + " is outside the " + std::to_string(layers) +
                   " layers (text_config.num_hidden_layers)");
      }
    }
  }
  if (m.experts > 0 && m.experts_per_token > m.experts) {
    text.at("num_experts_per_tok").fail(std::to_string(m.experts_per_token) + " is more than the " +
                                        std::to_string(m.experts) + " experts");
  }
  m.norm_topk_prob = text.boolean("norm_topk_prob", true);
  if (!m.norm_topk_prob) {
    // transformers 5.12's router renormalises regardless of the flag; refuse rather than pick a side.
    throw Unsupported(text.file() + ": field \"" + text.path() +
                      ".norm_topk_prob\": false is not supported (only renormalised top-k routing weights)");
  }
  return m;
}

TextConfig read_text_config(const JsonField& text, bool moe) {
  TextConfig t;
  t.vocab_size = size_field(text, "vocab_size");
  t.hidden_size = size_field(text, "hidden_size");
  // MoE: only the dense layers (mlp_only_layers) use it; Qwen3VLMoeTextConfig's default when absent.
  t.intermediate_size = moe ? size_field(text, "intermediate_size", 5632) : size_field(text, "intermediate_size");
  t.num_hidden_layers = size_field(text, "num_hidden_layers");
  t.num_attention_heads = size_field(text, "num_attention_heads");
  // HF: an absent key takes the class default (dense 32, 128, 128000; MoE 16, hidden / heads,
  // 128000); an explicit null num_key_value_heads means "as many as the attention heads".
  const bool kv_null = text.value().contains("num_key_value_heads") && text.value()["num_key_value_heads"].is_null();
  t.num_key_value_heads = size_field(text, "num_key_value_heads", kv_null ? t.num_attention_heads : moe ? 16 : 32);
  t.head_dim = size_field(text, "head_dim", moe ? t.hidden_size / t.num_attention_heads : 128);
  t.max_position_embeddings = size_field(text, "max_position_embeddings", 128000);
  if (const auto eps = text.find("rms_norm_eps")) {
    t.rms_norm_eps = eps->number();
    // eps <= 0 divides by zero on an all-zero row; beyond float32 it is infinite in the graph.
    if (!(t.rms_norm_eps > 0.0) || !std::isfinite(static_cast<float>(t.rms_norm_eps)) ||
        static_cast<float>(t.rms_norm_eps) == 0.0f) {
      eps->fail("must be a positive number that fits float32, got " + eps->value().dump());
    }
  }
  t.attention_bias = text.boolean("attention_bias", false);
  t.hidden_act = text.string("hidden_act", "silu");
  t.bos_token_id = token_id(text, "bos_token_id", -1);
  t.eos_token_id = token_id(text, "eos_token_id", -1);
  if (t.attention_bias) throw Unsupported(text.file() + ": text_config.attention_bias = true");
  if (t.hidden_act != "silu") text.at("hidden_act").fail("\"" + t.hidden_act + "\" is not supported (only silu)");
  read_rope(text, t);
  if (moe) t.moe = read_moe_config(text, t.num_hidden_layers);
  return t;
}

VisionConfig read_vision_config(const JsonField& vision) {
  VisionConfig v;
  v.depth = size_field(vision, "depth");
  v.hidden_size = size_field(vision, "hidden_size");
  v.intermediate_size = size_field(vision, "intermediate_size");
  v.num_heads = size_field(vision, "num_heads");
  v.in_channels = size_field(vision, "in_channels", 3);
  v.patch_size = size_field(vision, "patch_size", 16);
  v.temporal_patch_size = size_field(vision, "temporal_patch_size", 2);
  v.spatial_merge_size = size_field(vision, "spatial_merge_size", 2);
  v.out_hidden_size = size_field(vision, "out_hidden_size");
  v.num_position_embeddings = size_field(vision, "num_position_embeddings", 2304);
  if (const auto levels = vision.find("deepstack_visual_indexes")) {
    v.deepstack_visual_indexes = levels->integers(static_cast<std::size_t>(v.depth));
  } else {
    v.deepstack_visual_indexes = {8, 16, 24};
  }
  v.hidden_act = vision.string("hidden_act", "gelu_pytorch_tanh");
  if (v.hidden_act != "gelu_pytorch_tanh") {
    vision.at("hidden_act").fail("\"" + v.hidden_act + "\" is not supported (only gelu_pytorch_tanh)");
  }
  return v;
}

json text_config_json(const ModelConfig& c) {
  const TextConfig& t = c.text;
  json out = {
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
  if (t.moe) {
    out["model_type"] = "qwen3_vl_moe_text";
    out["decoder_sparse_step"] = t.moe->sparse_step;
    out["mlp_only_layers"] = t.moe->mlp_only_layers;
    out["moe_intermediate_size"] = t.moe->intermediate_size;
    out["norm_topk_prob"] = t.moe->norm_topk_prob;
    out["num_experts"] = t.moe->experts;
    out["num_experts_per_tok"] = t.moe->experts_per_token;
    out["router_aux_loss_coef"] = 0.001;
  }
  return out;
}

json vision_config_json(const VisionConfig& v, bool moe) {
  return {
      {"deepstack_visual_indexes", v.deepstack_visual_indexes},
      {"depth", v.depth},
      {"hidden_act", v.hidden_act},
      {"hidden_size", v.hidden_size},
      {"in_channels", v.in_channels},
      {"initializer_range", 0.02},
      {"intermediate_size", v.intermediate_size},
      {"model_type", moe ? "qwen3_vl_moe" : "qwen3_vl"},
      {"num_heads", v.num_heads},
      {"num_position_embeddings", v.num_position_embeddings},
      {"out_hidden_size", v.out_hidden_size},
      {"patch_size", v.patch_size},
      {"spatial_merge_size", v.spatial_merge_size},
      {"temporal_patch_size", v.temporal_patch_size},
  };
}

}  // namespace

bool MoeConfig::sparse_layer(std::int64_t layer) const {
  const bool dense_only = std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end();
  return !dense_only && experts > 0 && (layer + 1) % sparse_step == 0;
}

std::int64_t VisionConfig::position_grid_side() const {
  return static_cast<std::int64_t>(std::sqrt(static_cast<double>(num_position_embeddings)));
}

ModelConfig parse_model_config(const JsonField& root) {
  root.require_object();
  const bool moe = is_moe_model_type(root);
  ModelConfig c;
  const JsonField text = root.object("text_config");
  c.text = read_text_config(text, moe);
  c.vision = read_vision_config(root.object("vision_config"));
  c.image_token_id = root.integer("image_token_id", 151655);
  c.video_token_id = root.integer("video_token_id", 151656);
  c.vision_start_token_id = root.integer("vision_start_token_id", 151652);
  c.vision_end_token_id = root.integer("vision_end_token_id", 151653);
  // Top level wins (HF ties from the outer config); older files carry it only in text_config.
  c.tie_word_embeddings = root.boolean("tie_word_embeddings", text.boolean("tie_word_embeddings", false));
  validate(c, root.file());
  return c;
}

ModelConfig parse_model_config(const json& root_json, const std::string& source) {
  return parse_model_config(JsonField(root_json, source));
}

ModelConfig parse_model_config_text(const std::string& text, const std::string& source) {
  return parse_model_config(parse_json_bounded(text, source), source);
}

ModelConfig load_model_config(const std::filesystem::path& config_json) {
  return parse_model_config(read_json_bounded(config_json), config_json.string());
}

json to_config_json(const ModelConfig& c) {
  const bool moe = c.text.moe.has_value();
  return json{
      {"architectures", {moe ? "Qwen3VLMoeForConditionalGeneration" : "Qwen3VLForConditionalGeneration"}},
      {"image_token_id", c.image_token_id},
      {"model_type", moe ? "qwen3_vl_moe" : "qwen3_vl"},
      {"text_config", text_config_json(c)},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"transformers_version", "4.57.0.dev0"},
      {"video_token_id", c.video_token_id},
      {"vision_config", vision_config_json(c.vision, moe)},
      {"vision_end_token_id", c.vision_end_token_id},
      {"vision_start_token_id", c.vision_start_token_id},
  };
}

}  // namespace q3vl
