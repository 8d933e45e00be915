#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "q3vl/error.h"

namespace q3vl {

void SamplingOptions::validate() const {
  if (!(temperature > 0.0f && std::isfinite(temperature)) && !greedy) {
    throw InvalidInput("temperature must be a finite number > 0 (use --greedy for argmax)");
  }
  if (top_k < 0) throw InvalidInput("top-k must be >= 0");
  if (!(top_p > 0.0f && top_p <= 1.0f)) throw InvalidInput("top-p must be in (0, 1]");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) throw InvalidInput("min-p must be in [0, 1]");
  if (!(repetition_penalty > 0.0f && std::isfinite(repetition_penalty))) {
    throw InvalidInput("repetition penalty must be a finite number > 0");
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) throw InvalidInput("presence penalty must be in [-2, 2]");
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) throw InvalidInput("frequency penalty must be in [-2, 2]");
}

std::int64_t argmax(std::span<const float> logits) {
  return std::max_element(logits.begin(), logits.end()) - logits.begin();  // first maximum, as torch
}

Sampler::Sampler(const SamplingOptions& options) : options_(options) {
  options_.validate();
  rng_.seed(options.seed ? *options.seed : std::random_device{}());
}

std::int64_t Sampler::next(std::span<const float> logits, std::span<const std::int64_t> history, std::size_t generated) {
  scores_.assign(logits.begin(), logits.end());
  const std::int64_t vocab = static_cast<std::int64_t>(scores_.size());
  if (options_.repetition_penalty != 1.0f) {
    // Once per distinct token, as HF's gather/scatter does: `seen_` marks the ones done (and is
    // cleared again through the same list), linear in the history on every step.
    seen_.resize(scores_.size(), 0);
    for (std::int64_t id : history) {
      if (id < 0 || id >= vocab || seen_[static_cast<std::size_t>(id)]) continue;
      seen_[static_cast<std::size_t>(id)] = 1;
      float& s = scores_[static_cast<std::size_t>(id)];
      s = s < 0 ? s * options_.repetition_penalty : s / options_.repetition_penalty;
    }
    for (std::int64_t id : history) {
      if (id >= 0 && id < vocab) seen_[static_cast<std::size_t>(id)] = 0;
    }
  }
  if ((options_.presence_penalty != 0.0f || options_.frequency_penalty != 0.0f) && generated > 0) {
    // Presence once per token of the reply, frequency once per occurrence.
    seen_.resize(scores_.size(), 0);
    const std::span<const std::int64_t> reply = history.last(std::min(generated, history.size()));
    for (std::int64_t id : reply) {
      if (id < 0 || id >= vocab) continue;
      float& s = scores_[static_cast<std::size_t>(id)];
      s -= options_.frequency_penalty;
      if (!seen_[static_cast<std::size_t>(id)]) s -= options_.presence_penalty;
      seen_[static_cast<std::size_t>(id)] = 1;
    }
    for (std::int64_t id : reply) {
      if (id >= 0 && id < vocab) seen_[static_cast<std::size_t>(id)] = 0;
    }
  }
  if (options_.greedy) return argmax(scores_);
  for (float& s : scores_) s /= options_.temperature;

  order_.resize(scores_.size());
  std::iota(order_.begin(), order_.end(), 0);
  auto higher = [this](std::int32_t a, std::int32_t b) {
    return scores_[static_cast<std::size_t>(a)] > scores_[static_cast<std::size_t>(b)];
  };
  std::size_t keep = order_.size();
  if (options_.top_k > 0 && static_cast<std::size_t>(options_.top_k) < keep) {
    // Keep every score >= the k-th largest (ties survive, as in HF); only those need sorting.
    const auto kth_it = order_.begin() + (options_.top_k - 1);
    std::nth_element(order_.begin(), kth_it, order_.end(), higher);
    const float kth = scores_[static_cast<std::size_t>(*kth_it)];
    const auto tail = std::partition(kth_it + 1, order_.end(),
                                     [&](std::int32_t id) { return scores_[static_cast<std::size_t>(id)] >= kth; });
    keep = static_cast<std::size_t>(tail - order_.begin());
  }
  std::sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(keep), higher);
  auto probabilities = [&](std::size_t count) {
    std::vector<double> p(count);
    const double top = scores_[static_cast<std::size_t>(order_[0])];
    double sum = 0;
    for (std::size_t i = 0; i < count; ++i) sum += p[i] = std::exp(scores_[static_cast<std::size_t>(order_[i])] - top);
    for (double& x : p) x /= sum;
    return p;
  };
  if (options_.top_p < 1.0f) {
    // HF sorts ascending and drops tokens while the cumulative probability stays <= 1 - top_p.
    const std::vector<double> p = probabilities(keep);
    double ascending = 0;
    std::size_t drop = 0;
    for (std::size_t i = keep; i-- > 1;) {  // never drop the most likely token
      ascending += p[i];
      if (ascending <= 1.0 - options_.top_p) drop = keep - i;
      else break;
    }
    keep -= drop;
  }
  if (options_.min_p > 0.0f) {
    const std::vector<double> p = probabilities(keep);
    const double threshold = options_.min_p * p[0];
    std::size_t kept = 1;
    while (kept < keep && p[kept] >= threshold) ++kept;
    keep = kept;
  }
  const std::vector<double> p = probabilities(keep);
  std::discrete_distribution<std::size_t> draw(p.begin(), p.end());
  return order_[draw(rng_)];
}

}  // namespace q3vl
