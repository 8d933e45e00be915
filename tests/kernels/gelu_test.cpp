// The vectorized tanh GELU with a bias (kernels/gelu.h) against 0.5 x (1 + tanh(...)) in double
// precision, on every instruction set this CPU runs, for widths with and without a vector tail,
// with and without a bias, and for inputs far out in either direction.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/gelu.h"

namespace q3vl::kernels {
namespace {

double gelu_tanh_reference(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
}

TEST(BiasGeluTanh, MatchesDoublePrecisionOnEveryInstructionSet) {
  std::size_t checked = 0;
  for (const Int4Isa isa : kEveryInt4Isa) {
    if (!int4_isa_available(isa)) continue;
    for (const std::int64_t width : {std::int64_t{4096}, std::int64_t{37}, std::int64_t{3}}) {
      for (const bool with_bias : {true, false}) {
        const std::int64_t rows = 3;
        std::mt19937 rng(static_cast<unsigned>(width));
        std::normal_distribution<float> normal(0.0f, 3.0f);
        std::vector<float> values(static_cast<std::size_t>(rows * width));
        for (float& v : values) v = normal(rng);
        std::vector<float> bias(static_cast<std::size_t>(width));
        for (float& b : bias) b = normal(rng);
        values[0] = -200.0f;  // e^-2u beyond float: gelu ~ -0
        values[1] = 150.0f;   // gelu = x
        values[2] = 0.0f;
        const std::vector<float> input = values;
        bias_gelu_tanh_rows(values.data(), rows, width, with_bias ? bias.data() : nullptr, isa);
        double worst = 0;
        for (std::int64_t r = 0; r < rows; ++r) {
          for (std::int64_t i = 0; i < width; ++i) {
            const std::size_t at = static_cast<std::size_t>(r * width + i);
            const double x = static_cast<double>(input[at]) + (with_bias ? bias[static_cast<std::size_t>(i)] : 0.0f);
            const double want = gelu_tanh_reference(x);
            worst = std::max(worst, std::fabs(values[at] - want) / std::max(1e-3, std::fabs(want)));
          }
        }
        EXPECT_LT(worst, 2e-6) << to_string(isa) << ", width " << width << (with_bias ? ", bias" : ", no bias");
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 6u);  // the portable build at least
}

TEST(AddBiasRows, AddsTheBiasToEveryRow) {
  std::vector<float> values = {1, 2, 3, 4, 5, 6};
  const std::vector<float> bias = {0.5f, -1.0f, 2.0f};
  add_bias_rows(values.data(), 2, 3, bias.data());
  EXPECT_EQ(values, (std::vector<float>{1.5f, 1.0f, 5.0f, 4.5f, 4.0f, 8.0f}));
}

}  // namespace
}  // namespace q3vl::kernels
