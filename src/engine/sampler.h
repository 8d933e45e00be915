#pragma once
// Next-token choice from logits, in Hugging Face's order: repetition penalty, temperature, top-k,
// top-p, min-p, then a draw from the softmax (spec §6.2). Greedy takes the first maximum.
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace q3vl {

struct SamplingOptions {
  bool greedy = false;
  float temperature = 1.0f;
  std::int64_t top_k = 0;       // 0: off
  float top_p = 1.0f;           // 1: off
  float min_p = 0.0f;           // 0: off
  float repetition_penalty = 1.0f;
  std::optional<std::uint64_t> seed;  // none: a random seed

  void validate() const;  // throws InvalidInput for out-of-range values
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // `history`: every token so far (prompt and generated), for the repetition penalty.
  std::int64_t next(std::span<const float> logits, std::span<const std::int64_t> history);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
  std::vector<float> scores_;
  std::vector<std::int32_t> order_;
};

std::int64_t argmax(std::span<const float> logits);

}  // namespace q3vl
