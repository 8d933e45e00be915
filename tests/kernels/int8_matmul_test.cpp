// q3vl's dense int8 kernel (kernels/int8_matmul.h) against a plain double-precision product with
// the dequantized weights ((byte - 128) * scale, MatMulNBits' 8-bit symmetric definition) written
// here. The kernel quantizes activations to int8 in groups of 32, so it agrees to ~1%; with inputs
// int8 represents exactly, every instruction set must agree exactly.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/int4_test_support.h"
#include "kernels/int8_matmul.h"
#include "q3vl/error.h"

namespace q3vl::kernels {
namespace {

struct RandomInt8Matrix {
  std::vector<std::uint8_t> values;
  std::vector<float> scales;
  Int8Matrix view;
};

// Random bytes (the padding of a short last block too, which must multiply zeros); scales random,
// or powers of two when `exact` (products then stay exact in float).
RandomInt8Matrix random_int8_matrix(std::int64_t rows, std::int64_t cols, std::int64_t block, std::mt19937& rng, bool exact = false) {
  RandomInt8Matrix m;
  const std::int64_t blocks = (cols + block - 1) / block;
  m.values.resize(static_cast<std::size_t>(rows * blocks * block));
  for (std::uint8_t& b : m.values) b = static_cast<std::uint8_t>(rng() & 0xFF);
  m.scales.resize(static_cast<std::size_t>(rows * blocks));
  std::uniform_real_distribution<float> scale(0.0002f, 0.002f);
  for (float& s : m.scales) s = exact ? std::ldexp(1.0f, -static_cast<int>(rng() % 4) - 12) : scale(rng);
  m.view = {m.values.data(), m.scales.data(), rows, cols, block};
  return m;
}

// Row r of MatMulNBits' layout: whole blocks of `block` bytes, the last padded past `cols`.
std::vector<double> reference(const Int8Matrix& w, const std::vector<float>& x, std::int64_t tokens) {
  const std::int64_t blocks = (w.cols + w.block - 1) / w.block;
  const auto weight = [&](std::int64_t r, std::int64_t c) {
    return (w.values[static_cast<std::size_t>(r * blocks * w.block + c)] - 128) *
           static_cast<double>(w.scales[static_cast<std::size_t>(r * blocks + c / w.block)]);
  };
  return dense_reference(w.rows, w.cols, weight, x, tokens);
}

struct Shape {
  std::int64_t rows, cols, block, tokens;
};

TEST(Int8MatMul, MatchesTheDequantizedReferenceOnEveryInstructionSet) {
  const std::vector<Shape> shapes = {
      {130, 256, 32, 1},  // one token: three row tasks, the last short (a panel of 2 rows)
      {67, 128, 32, 7},   // a token pass of 4 and one of 3, an odd row count
      {40, 96, 32, 300},  // two passes (256 tokens each), an odd number of groups
      {64, 256, 64, 5},   // two groups of 32 per block
      {48, 256, 128, 2},  // four groups per block
      {33, 48, 16, 3},    // block 16: the portable kernel only
      {37, 80, 32, 9},    // rows padded to whole blocks (80 of 96 columns), as the 8B's vision MLP (4304)
      {20, 48, 32, 300},  // one whole block and one half one, two passes
      {16, 100, 64, 5},   // a block of 64 padded by 28: the last activation group holds 4 values
      {9, 40, 16, 4},     // block 16 padded: the portable kernel
  };
  std::size_t checked = 0;
  for (const Shape& s : shapes) {
    std::mt19937 rng(static_cast<unsigned>(s.rows * 37 + s.tokens));
    const RandomInt8Matrix w = random_int8_matrix(s.rows, s.cols, s.block, rng);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(static_cast<std::size_t>(s.tokens * s.cols));
    for (float& v : x) v = normal(rng);
    const std::vector<double> ref = reference(w.view, x, s.tokens);
    for (Int4Isa isa : available_isas()) {
      SCOPED_TRACE("rows " + std::to_string(s.rows) + ", cols " + std::to_string(s.cols) + ", block " + std::to_string(s.block) +
                   ", tokens " + std::to_string(s.tokens) + ", " + to_string(isa));
      std::vector<float> out(ref.size(), -1.0f);
      run_int8_matmul(w.view, x.data(), s.tokens, out.data(), serial_for(), isa);
      EXPECT_LT(relative_error(out, ref), 0.02);
      ++checked;
    }
  }
  EXPECT_EQ(checked, shapes.size() * available_isas().size());
  std::printf("[ int8 matmul ] %zu shape x instruction-set cases\n", checked);
}

// Activations int8 holds exactly and power-of-two scales: every instruction set equals the exact
// products, across the pass boundary (260 tokens), the row tasks and a short last panel (70 rows);
// also with rows padded to whole blocks (112 of 128 columns: the padding's random bytes add nothing).
TEST(Int8MatMul, IsExactWhereInt8IsExact) {
  std::size_t checked = 0;
  const std::int64_t rows = 70, tokens = 260;
  for (const std::int64_t cols : {std::int64_t{128}, std::int64_t{112}}) {
    std::mt19937 rng(13);
    const RandomInt8Matrix w = random_int8_matrix(rows, cols, 32, rng, /*exact=*/true);
    std::vector<float> x(static_cast<std::size_t>(tokens * cols));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = i % static_cast<std::size_t>(cols) % 32 == 5 ? 127.0f : static_cast<float>(static_cast<int>(rng() % 255) - 127);
    const std::vector<double> ref = reference(w.view, x, tokens);
    for (const std::int64_t count : {std::int64_t{1}, tokens}) {
      for (Int4Isa isa : available_isas()) {
        SCOPED_TRACE(to_string(isa) + ", " + std::to_string(cols) + " columns, " + std::to_string(count) + " tokens");
        std::vector<float> out(static_cast<std::size_t>(count * rows), 0.0f);
        run_int8_matmul(w.view, x.data(), count, out.data(), serial_for(), isa);
        expect_exact_products(out, ref, rows, checked);
      }
    }
  }
  EXPECT_EQ(checked, 2 * available_isas().size() * rows * (1 + tokens));
}

TEST(Int8MatMul, RefusesMatricesItCannotReadNamingThem) {
  std::mt19937 rng(5);
  RandomInt8Matrix w = random_int8_matrix(8, 96, 32, rng);
  std::vector<float> x(96), out(8);
  Int8Matrix bad = w.view;
  bad.block = 48;  // not a power of two
  try {
    run_int8_matmul(bad, x.data(), 1, out.data(), serial_for());
    FAIL() << "no error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("[8, 96] in blocks of 48"), std::string::npos) << e.what();
  }
  bad = w.view;
  bad.scales = nullptr;
  EXPECT_THROW(check_int8_matmul(bad), InvalidInput);
}

}  // namespace
}  // namespace q3vl::kernels
