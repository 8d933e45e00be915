// The q/k preamble of QkvAttention (kernels/qk_norm_rotary.h) against RMS norm and rotate-half
// rotation written out here in double precision, and its refusals: a token reading a cos/sin row
// outside the table, an odd head size.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/qk_norm_rotary.h"
#include "q3vl/error.h"

namespace q3vl::kernels {
namespace {

struct Preamble {
  std::int64_t heads = 4, kv_heads = 2, D = 64, tokens = 3, table_rows = 5;
  std::vector<float> qkv, q_weight, k_weight, cos, sin;
  std::vector<std::int64_t> rows{4, 0, 2};
  QkvPreamble view() const {
    return {heads, kv_heads, D, 1e-6f, q_weight.data(), k_weight.data(), cos.data(), sin.data(), table_rows, rows.data()};
  }
};

Preamble random_preamble() {
  Preamble p;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::uniform_real_distribution<float> angle(-20.0f, 20.0f), weight(0.5f, 1.5f);
  p.qkv.resize(static_cast<std::size_t>(p.tokens * (p.heads + 2 * p.kv_heads) * p.D));
  for (float& x : p.qkv) x = normal(rng);
  for (auto* w : {&p.q_weight, &p.k_weight}) {
    for (std::int64_t i = 0; i < p.D; ++i) w->push_back(weight(rng));
  }
  for (std::int64_t i = 0; i < p.table_rows * p.D / 2; ++i) {
    const float a = angle(rng);
    p.cos.push_back(std::cos(a));
    p.sin.push_back(std::sin(a));
  }
  return p;
}

// Head `h` of token `t` (a query head below p.heads, a key head above) normed and rotated.
std::vector<double> reference_head(const Preamble& p, std::int64_t t, std::int64_t h) {
  const std::int64_t width = (p.heads + 2 * p.kv_heads) * p.D, half = p.D / 2;
  const float* x = p.qkv.data() + t * width + h * p.D;
  const std::vector<float>& w = h < p.heads ? p.q_weight : p.k_weight;
  double squares = 0;
  for (std::int64_t i = 0; i < p.D; ++i) squares += static_cast<double>(x[i]) * x[i];
  const double inverse = 1.0 / std::sqrt(squares / static_cast<double>(p.D) + 1e-6);
  std::vector<double> out(static_cast<std::size_t>(p.D));
  const std::int64_t row = p.rows[static_cast<std::size_t>(t)];
  for (std::int64_t i = 0; i < half; ++i) {
    const double a = x[i] * inverse * w[static_cast<std::size_t>(i)], b = x[i + half] * inverse * w[static_cast<std::size_t>(i + half)];
    const double c = p.cos[static_cast<std::size_t>(row * half + i)], s = p.sin[static_cast<std::size_t>(row * half + i)];
    out[static_cast<std::size_t>(i)] = a * c - b * s;
    out[static_cast<std::size_t>(i + half)] = b * c + a * s;
  }
  return out;
}

TEST(QkvPreamble, NormsAndRotatesQueryAndKeyHeadsAndCopiesValues) {
  const Preamble p = random_preamble();
  std::vector<float> q(static_cast<std::size_t>(p.tokens * p.heads * p.D)), k(static_cast<std::size_t>(p.tokens * p.kv_heads * p.D)), v(k.size());
  run_qkv_preamble(p.view(), p.qkv.data(), p.tokens, q.data(), k.data(), v.data(), serial_for());
  double worst = 0;
  std::size_t heads_checked = 0;
  for (std::int64_t t = 0; t < p.tokens; ++t) {
    for (std::int64_t h = 0; h < p.heads + p.kv_heads; ++h) {
      const std::vector<double> want = reference_head(p, t, h);
      const float* got = h < p.heads ? q.data() + (t * p.heads + h) * p.D : k.data() + (t * p.kv_heads + h - p.heads) * p.D;
      for (std::int64_t i = 0; i < p.D; ++i) worst = std::max(worst, std::fabs(got[i] - want[static_cast<std::size_t>(i)]));
      ++heads_checked;
    }
    for (std::int64_t i = 0; i < p.kv_heads * p.D; ++i) {
      EXPECT_EQ(v[static_cast<std::size_t>(t * p.kv_heads * p.D + i)],
                p.qkv[static_cast<std::size_t>(t * (p.heads + 2 * p.kv_heads) * p.D + (p.heads + p.kv_heads) * p.D + i)]);
    }
  }
  EXPECT_LT(worst, 1e-5);  // normed values are ~1: an absolute bound
  EXPECT_EQ(heads_checked, static_cast<std::size_t>(p.tokens * (p.heads + p.kv_heads)));
}

TEST(QkvPreamble, RowsOutsideTheTableAndOddHeadsAreErrors) {
  std::vector<float> q(4096), k(4096), v(4096);
  Preamble p = random_preamble();
  p.rows[1] = p.table_rows;
  EXPECT_THROW(run_qkv_preamble(p.view(), p.qkv.data(), p.tokens, q.data(), k.data(), v.data(), serial_for()), InvalidInput);
  p.rows[1] = -1;
  EXPECT_THROW(run_qkv_preamble(p.view(), p.qkv.data(), p.tokens, q.data(), k.data(), v.data(), serial_for()), InvalidInput);
  p = random_preamble();
  QkvPreamble odd = p.view();
  odd.head_dim = 63;
  EXPECT_THROW(run_qkv_preamble(odd, p.qkv.data(), 1, q.data(), k.data(), v.data(), serial_for()), InvalidInput);
}

}  // namespace
}  // namespace q3vl::kernels
