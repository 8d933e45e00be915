#pragma once
// A checkpoint's generation_config.json (sampling defaults and special token ids), read in one
// place for the exporter (genai_config.json) and the runtime (generation defaults).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace q3vl {

struct GenerationConfig {
  bool do_sample = false;
  float temperature = 1.0f;
  std::int64_t top_k = 50;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  std::int64_t bos_token_id = -1;
  std::int64_t pad_token_id = -1;
  std::vector<std::int64_t> eos_token_ids;  // generation stops at any of them
};

// Missing keys take HF's defaults, and token ids the model config's. Throws InvalidInput naming
// `source` and the field for values of the wrong type or out of the range HF's sampling accepts
// (temperature, top_k, top_p, min_p, repetition_penalty) and for eos ids outside the vocabulary.
GenerationConfig parse_generation_config(const nlohmann::json& json, const ModelConfig& config,
                                         const std::string& source = "generation_config.json");
// The same inside another file (the package manifest): errors name the field path.
GenerationConfig parse_generation_config(const JsonField& json, const ModelConfig& config);

}  // namespace q3vl
