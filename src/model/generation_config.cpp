#include "model/generation_config.h"

#include "q3vl/error.h"

namespace q3vl {
namespace {

using nlohmann::json;

template <typename T>
T field(const json& object, const char* key, T fallback, const std::string& source) {
  if (!object.contains(key) || object[key].is_null()) return fallback;
  try {
    return object[key].get<T>();
  } catch (const json::exception&) {
    throw InvalidInput(source + ": " + key + " has the wrong type (" + object[key].dump() + ")");
  }
}

}  // namespace

GenerationConfig parse_generation_config(const json& g, const ModelConfig& config, const std::string& source) {
  if (!g.is_object()) throw InvalidInput(source + ": expected a JSON object");
  GenerationConfig out;
  out.do_sample = field(g, "do_sample", false, source);
  out.temperature = field(g, "temperature", 1.0f, source);
  out.top_k = field(g, "top_k", std::int64_t{50}, source);
  out.top_p = field(g, "top_p", 1.0f, source);
  out.min_p = field(g, "min_p", 0.0f, source);
  out.repetition_penalty = field(g, "repetition_penalty", 1.0f, source);
  out.bos_token_id = field(g, "bos_token_id", config.text.bos_token_id, source);
  out.pad_token_id = field(g, "pad_token_id", out.bos_token_id, source);
  const json eos = g.contains("eos_token_id") && !g["eos_token_id"].is_null() ? g["eos_token_id"] : json(config.text.eos_token_id);
  if (eos.is_array()) {
    for (const json& id : eos) {
      if (!id.is_number_integer()) throw InvalidInput(source + ": eos_token_id must hold integers, not " + eos.dump());
      out.eos_token_ids.push_back(id.get<std::int64_t>());
    }
  } else if (eos.is_number_integer() && eos.get<std::int64_t>() >= 0) {
    out.eos_token_ids.push_back(eos.get<std::int64_t>());
  }
  return out;
}

}  // namespace q3vl
