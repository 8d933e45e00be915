// The activation quantizer every int4/int8 kernel runs first (QuantizedActivations, int4_rows.h),
// against MatMulNBits' accuracy-level-4 rule written out here: per group of 32, scale = max|x| / 127,
// q = round-half-even(x * 127 / max|x|), offset = zero point * sum(q) * scale. Every instruction set
// must give the same bytes, in the layout int4_rows.h describes, and the same scales and offsets.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/int4_rows.h"
#include "kernels/int4_test_support.h"

namespace q3vl::kernels {
namespace {

// Rows of random values with the cases that matter placed in them: an all-zero group, a group
// whose largest value is negative, exact halves (x * 127 / max lands on .5: ties to even), signed
// zeros and a value 100 times the rest.
std::vector<float> test_rows(std::int64_t rows, std::int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(rows * cols));
  for (float& v : x) v = normal(rng);
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = x.data() + r * cols;
    for (int i = 0; i < 32; ++i) row[i] = 0.0f;
    if (cols >= 64) {
      row[32] = -127.0f;
      for (int i = 33; i < 64; ++i) row[i] = static_cast<float>(i - 48) + 0.5f;  // x * 127 / 127: exact halves
      row[40] = -0.0f;
    }
    if (cols >= 96) row[70] = 100.0f;
  }
  return x;
}

TEST(ActivationQuantizer, FollowsTheRuleOnEveryInstructionSet) {
  std::mt19937 rng(11);
  std::size_t checked = 0;
  // 80 columns: a short last group of 16, which only int8 weights take (their rows padded to whole
  // blocks); its missing values must quantize as zeros.
  for (const std::int64_t cols : {std::int64_t{32}, std::int64_t{96}, std::int64_t{2048}, std::int64_t{4096}, std::int64_t{80}}) {
    const std::int64_t rows = 3;
    const std::vector<float> x = test_rows(rows, cols, rng);
    for (const std::int64_t bits : {std::int64_t{4}, std::int64_t{8}}) {
      if (cols % 32 != 0 && bits == 4) continue;
      for (Int4Isa isa : available_isas()) {
        SCOPED_TRACE(to_string(isa) + ", " + std::to_string(cols) + " columns, weights of " + std::to_string(bits) + " bits");
        QuantizedActivations a;
        a.reset(rows, cols, 32, bits, isa);
        for (std::int64_t r = 0; r < rows; ++r) a.quantize(r, x.data() + r * cols);
        for (std::int64_t r = 0; r < rows; ++r) {
          for (std::int64_t g = 0; g < a.groups; ++g) {
            const float* v = x.data() + r * cols + g * 32;
            const std::int64_t present = std::min<std::int64_t>(32, cols - g * 32);
            const auto value = [&](int i) { return i < present ? v[i] : 0.0f; };
            float largest = 0.0f;
            for (int i = 0; i < 32; ++i) largest = std::max(largest, std::fabs(value(i)));
            const float inverse = largest > 0.0f ? 127.0f / largest : 0.0f;
            const QuantizedActivations::Halves at = a.halves(g);
            int sum = 0;
            for (int i = 0; i < 32; ++i) {
              const int q = static_cast<int>(std::nearbyint(value(i) * inverse));
              sum += q;
              const std::int64_t where = bits == 8 ? g * 32 + i : (i % 2 == 0 ? at.evens : at.odds) + i / 2;
              ASSERT_EQ(a.row_values(r)[where], q) << "row " << r << " group " << g << " value " << i;
            }
            const float scale = largest / 127.0f;
            ASSERT_EQ(a.scales[static_cast<std::size_t>(r * a.groups + g)], scale);
            ASSERT_EQ(a.offsets[static_cast<std::size_t>(r * a.groups + g)], (bits == 8 ? 128.0f : 8.0f) * static_cast<float>(sum) * scale);
            ++checked;
          }
        }
      }
    }
  }
  // (1 + 3 + 64 + 128) groups a row, 3 rows, two weight widths, and 3 groups a row (int8 only) of
  // the 80 columns, each instruction set.
  EXPECT_EQ(checked, (196u * 3u * 2u + 3u * 3u) * available_isas().size());
  std::printf("[ quantizer ] %zu groups checked\n", checked);
}

}  // namespace
}  // namespace q3vl::kernels
