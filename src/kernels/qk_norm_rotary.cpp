#include "kernels/qk_norm_rotary.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/rotary.h"
#include "q3vl/error.h"

namespace q3vl::kernels {
namespace {

// One head: RMS norm over D with `weight`, then x[i], x[i + D/2] rotated by the row's angle i.
void norm_rotate(const float* x, std::int64_t D, float epsilon, const float* weight, const float* cos, const float* sin, float* out) {
  float squares = 0.0f;
  for (std::int64_t i = 0; i < D; ++i) squares += x[i] * x[i];
  const float inverse = 1.0f / std::sqrt(squares / static_cast<float>(D) + epsilon);
  const std::int64_t half = D / 2;
  for (std::int64_t i = 0; i < half; ++i) {
    const float first = x[i] * inverse * weight[i], second = x[i + half] * inverse * weight[i + half];
    const RotatedPair r = rotate_half_pair(first, second, cos[i], sin[i], cos[i], sin[i]);
    out[i] = r.first;
    out[i + half] = r.second;
  }
}

}  // namespace

void run_qkv_preamble(const QkvPreamble& p, const float* qkv, std::int64_t tokens, float* q, float* k, float* v, const ParallelFor& parallel) {
  const std::int64_t D = p.head_dim;
  if (D <= 0 || D % 2 != 0 || p.heads <= 0 || p.kv_heads <= 0) {
    throw InvalidInput("q/k norm and rotary: " + std::to_string(p.heads) + " and " + std::to_string(p.kv_heads) + " heads of " + std::to_string(D) +
                       " (the head size must be even)");
  }
  for (std::int64_t t = 0; t < tokens; ++t) {
    if (p.token_rows[t] < 0 || p.token_rows[t] >= p.table_rows) {
      throw InvalidInput("q/k norm and rotary: token " + std::to_string(t) + " reads row " + std::to_string(p.token_rows[t]) + " of a " +
                         std::to_string(p.table_rows) + "-row cos/sin table");
    }
  }
  const std::int64_t width = (p.heads + 2 * p.kv_heads) * D;
  parallel(static_cast<std::size_t>(tokens), [&](std::size_t task) {
    const auto t = static_cast<std::int64_t>(task);
    const float* row = qkv + t * width;
    const float* cos = p.cos + p.token_rows[t] * (D / 2);
    const float* sin = p.sin + p.token_rows[t] * (D / 2);
    for (std::int64_t h = 0; h < p.heads; ++h) norm_rotate(row + h * D, D, p.epsilon, p.q_weight, cos, sin, q + (t * p.heads + h) * D);
    for (std::int64_t h = 0; h < p.kv_heads; ++h) {
      norm_rotate(row + (p.heads + h) * D, D, p.epsilon, p.k_weight, cos, sin, k + (t * p.kv_heads + h) * D);
    }
    std::memcpy(v + t * p.kv_heads * D, row + (p.heads + p.kv_heads) * D, static_cast<std::size_t>(p.kv_heads * D) * sizeof(float));
  });
}

}  // namespace q3vl::kernels
