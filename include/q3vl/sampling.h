#pragma once
// How the next token is chosen. Hugging Face's order and meaning: repetition penalty, then
// OpenAI's presence and frequency penalties, temperature, top-k, top-p, min-p, then a draw from the
// softmax; greedy takes the first maximum (after the penalties).
#include <cstdint>
#include <optional>

namespace q3vl {

struct SamplingOptions {
  bool greedy = false;
  float temperature = 1.0f;
  std::int64_t top_k = 0;       // 0: off
  float top_p = 1.0f;           // 1: off
  float min_p = 0.0f;           // 0: off
  float repetition_penalty = 1.0f;   // HF: over the prompt and the reply so far (1: off)
  // OpenAI's: logit -= presence * [token in the reply so far] + frequency * (its count there), over
  // the generated tokens only (as vLLM); 0: off, range [-2, 2].
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::optional<std::uint64_t> seed;  // none: a random seed

  void validate() const;  // throws InvalidInput for out-of-range values
};

}  // namespace q3vl
