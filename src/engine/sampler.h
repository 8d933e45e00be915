#pragma once
// Next-token choice from logits, in Hugging Face's order: repetition penalty, (OpenAI's presence and
// frequency penalties), temperature, top-k, top-p, min-p, then a draw from the softmax
// (docs/model-math.md §9.2). Greedy takes the first maximum.
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "q3vl/sampling.h"

namespace q3vl {

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // `history`: every token so far (prompt and generated), for the repetition penalty; its last
  // `generated` tokens are the reply so far, for the presence and frequency penalties.
  std::int64_t next(std::span<const float> logits, std::span<const std::int64_t> history, std::size_t generated = 0);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
  std::vector<float> scores_;
  std::vector<std::int32_t> order_;
  std::vector<std::uint8_t> seen_;  // per vocabulary entry, all 0 between calls
};

std::int64_t argmax(std::span<const float> logits);

}  // namespace q3vl
