// q3vl's vision MLP in blocks of rows (kernels/patch_mlp.h) against the same steps run on the whole
// input as the two Int8MatMul ops ran them (the int8 matmul, the bias and GELU, the int8 matmul, the
// bias): the same bytes, for row counts below, at and across the block size, on every instruction
// set this CPU runs. Shapes that do not chain are errors.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/gelu.h"
#include "kernels/int4_matrices.h"
#include "kernels/int4_test_support.h"
#include "kernels/patch_mlp.h"
#include "q3vl/error.h"

namespace q3vl::kernels {
namespace {

struct RandomInt8 {
  std::vector<std::uint8_t> values;
  std::vector<float> scales;
  Int8Matrix view() const { return {values.data(), scales.data(), rows, cols, block}; }
  std::int64_t rows, cols, block;
};

// MatMulNBits' layout: rows of whole blocks, a short last one padded (with random bytes here).
RandomInt8 random_int8(std::int64_t rows, std::int64_t cols, std::int64_t block, std::mt19937& rng) {
  RandomInt8 m{{}, {}, rows, cols, block};
  const std::int64_t blocks = (cols + block - 1) / block;
  m.values.resize(static_cast<std::size_t>(rows * blocks * block));
  for (std::uint8_t& v : m.values) v = static_cast<std::uint8_t>(rng() & 0xFF);
  std::uniform_real_distribution<float> scale(0.001f, 0.01f);
  m.scales.resize(static_cast<std::size_t>(rows * blocks));
  for (float& s : m.scales) s = scale(rng);
  return m;
}

std::vector<float> random_floats(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Hidden widths of whole blocks, and one whose down projection's rows end in a padded block (as the
// 8B's 4304).
TEST(PatchMlp, BlocksOfRowsGiveTheBytesOfTheWholeInput) {
  constexpr std::int64_t D = 64, block = 32;
  int checked = 0;
  for (const std::int64_t hidden : {std::int64_t{256}, std::int64_t{240}}) {
    std::mt19937 rng(11);
    const RandomInt8 up = random_int8(hidden, D, block, rng), down = random_int8(D, hidden, block, rng);
    const std::vector<float> up_bias = random_floats(hidden, rng), down_bias = random_floats(D, rng);
    for (const std::int64_t tokens : {std::int64_t{1}, std::int64_t{37}, kPatchMlpRows, 2 * kPatchMlpRows + 45}) {
      const std::vector<float> x = random_floats(static_cast<std::size_t>(tokens * D), rng);
      for (const Int4Isa isa : kEveryInt4Isa) {
        if (!int4_isa_available(isa)) continue;
        std::vector<float> h(static_cast<std::size_t>(tokens * hidden)), expected(static_cast<std::size_t>(tokens * D));
        run_int8_matmul(up.view(), x.data(), tokens, h.data(), serial_for(), isa);
        bias_gelu_tanh_rows(h.data(), tokens, hidden, up_bias.data(), isa);
        run_int8_matmul(down.view(), h.data(), tokens, expected.data(), serial_for(), isa);
        add_bias_rows(expected.data(), tokens, D, down_bias.data());

        PatchMlp mlp{up.view(), up_bias.data(), down.view(), down_bias.data()};
        PatchMlpScratch scratch;
        std::vector<float> out(expected.size(), -1.0f);
        run_patch_mlp(mlp, x.data(), tokens, out.data(), serial_for(), scratch, isa);
        EXPECT_EQ(std::memcmp(out.data(), expected.data(), out.size() * sizeof(float)), 0)
            << to_string(isa) << ", hidden " << hidden << ", " << tokens << " rows";
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, static_cast<int>(2 * 4 * available_isas().size()));
}

TEST(PatchMlp, ShapesThatDoNotChainAreErrors) {
  std::mt19937 rng(3);
  const RandomInt8 up = random_int8(128, 64, 32, rng), down = random_int8(64, 96, 32, rng);  // down reads 96, up gives 128
  const PatchMlp mlp{up.view(), nullptr, down.view(), nullptr};
  EXPECT_THROW(check_patch_mlp(mlp), InvalidInput);
  std::vector<float> x(64), out(64);
  PatchMlpScratch scratch;
  EXPECT_THROW(run_patch_mlp(mlp, x.data(), 1, out.data(), serial_for(), scratch), InvalidInput);
}

}  // namespace
}  // namespace q3vl::kernels
