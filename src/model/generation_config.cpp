#include "model/generation_config.h"

#include <cmath>

#include "q3vl/error.h"
#include "util/json_fields.h"

namespace q3vl {
namespace {

using nlohmann::json;

// A float32 sampling parameter within [low, high] (an open end where `open_low` / `open_high`).
float sampling_value(const JsonField& g, const char* key, float fallback, double low, double high, bool open_low,
                     bool open_high, const char* range) {
  const auto field = g.find(key);
  if (!field) return fallback;
  const double value = field->number();
  const bool fits = (open_low ? value > low : value >= low) && (open_high ? value < high : value <= high) &&
                    std::isfinite(static_cast<float>(value));
  if (!fits) field->fail("must be " + std::string(range) + ", got " + field->value().dump());
  return static_cast<float>(value);
}

}  // namespace

GenerationConfig parse_generation_config(const JsonField& g, const ModelConfig& config) {
  g.require_object();
  GenerationConfig out;
  out.do_sample = g.boolean("do_sample", false);
  // The ranges HF's logits warpers enforce (and our sampler needs); a temperature of 0 only makes
  // sense for greedy decoding.
  out.temperature = sampling_value(g, "temperature", 1.0f, 0.0, 1e30, out.do_sample, false,
                                   out.do_sample ? "a positive number (do_sample is true)" : "a number >= 0");
  out.top_k = g.integer("top_k", 50);
  if (out.top_k < 0) g.at("top_k").fail("must be >= 0 (0 turns it off), got " + std::to_string(out.top_k));
  out.top_p = sampling_value(g, "top_p", 1.0f, 0.0, 1.0, true, false, "in (0, 1]");
  out.min_p = sampling_value(g, "min_p", 0.0f, 0.0, 1.0, false, false, "in [0, 1]");
  out.repetition_penalty = sampling_value(g, "repetition_penalty", 1.0f, 0.0, 1e30, true, false, "a positive number");
  const auto token = [&](const char* key, std::int64_t fallback) {
    const auto field = g.find(key);
    if (!field) return fallback;
    if (field->value().is_array()) {  // HF allows a list for these too; the first one is the one used
      const auto ids = field->integers(1024);
      return ids.empty() ? fallback : ids.front();
    }
    return field->integer();
  };
  out.bos_token_id = token("bos_token_id", config.text.bos_token_id);
  out.pad_token_id = token("pad_token_id", out.bos_token_id);
  const auto check_eos = [&](const JsonField& field, std::int64_t id) {
    if (id >= config.text.vocab_size) {
      field.fail("token id " + std::to_string(id) + " is outside the vocabulary of " +
                 std::to_string(config.text.vocab_size) + " (config.json text_config.vocab_size): generation would never stop");
    }
  };
  if (const auto eos = g.find("eos_token_id")) {
    if (eos->value().is_array()) {
      for (const JsonField& id : eos->items(1024)) {
        out.eos_token_ids.push_back(id.integer());
        check_eos(id, out.eos_token_ids.back());
      }
    } else if (const std::int64_t id = eos->integer(); id >= 0) {
      check_eos(*eos, id);
      out.eos_token_ids.push_back(id);
    }
  } else if (config.text.eos_token_id >= 0) {
    out.eos_token_ids.push_back(config.text.eos_token_id);
  }
  return out;
}

GenerationConfig parse_generation_config(const json& g, const ModelConfig& config, const std::string& source) {
  return parse_generation_config(JsonField(g, source), config);
}

}  // namespace q3vl
