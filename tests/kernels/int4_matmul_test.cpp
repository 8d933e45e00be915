// q3vl's dense int4 kernel (kernels/int4_matmul.h) against a plain double-precision product with
// the dequantized weights ((nibble - 8) * scale) written here from MatMulNBits' definition. The
// kernel quantizes activations to int8, so it agrees to ~1%; with inputs that int8 represents
// exactly, every instruction set must agree exactly.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/int4_matmul.h"
#include "kernels/int4_test_support.h"
#include "q3vl/error.h"

namespace q3vl::kernels {
namespace {

std::vector<double> reference(const Int4Matrices& w, const std::vector<float>& x, std::int64_t tokens) {
  return dense_reference(w.rows, w.cols, [&](std::int64_t r, std::int64_t c) { return weight(w, 0, r, c); }, x, tokens);
}

struct Shape {
  std::int64_t rows, cols, block, tokens;
};

TEST(Int4MatMul, MatchesTheDequantizedReferenceOnEveryInstructionSet) {
  const std::vector<Shape> shapes = {
      {130, 256, 32, 1},  // a decode step: three row tasks, the last short
      {37, 352, 32, 1},   // decode: eight groups a pass, then a pair and an unpaired group
      {11, 96, 32, 1},    // decode, fewer than eight groups
      {24, 512, 64, 1},   // decode, blocks of two groups (each pass reads only its row's scales)
      {24, 512, 128, 1},  // decode, blocks of four groups
      {24, 512, 256, 1},  // decode, eight groups to a block
      {9, 1024, 512, 1},  // decode, blocks longer than a pass
      {67, 128, 32, 7},   // token tiles of 4 and 3, an odd row count
      {45, 128, 32, 20},  // panels: the last of 13 rows (eight, then five in AVX2's second half)
      {40, 96, 32, 300},  // two passes (256 tokens each), an unpaired last group
      {64, 256, 64, 5},   // two groups of 32 per block
      {64, 256, 128, 2},  // four groups per block, two tokens (four rows at once)
      {33, 48, 16, 3},    // block 16: the portable kernel only
      {2000, 512, 32, 1}, // decode rows in two chunks of ~900 rows (row_chunks.h)
      {2000, 512, 32, 3}, // three tokens, still chunked: row tiles of four rows
  };
  std::size_t checked = 0;
  for (const Shape& s : shapes) {
    std::mt19937 rng(static_cast<unsigned>(s.rows * 31 + s.tokens));
    const RandomMatrices float_scales = random_matrices(1, s.rows, s.cols, s.block, rng);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(static_cast<std::size_t>(s.tokens * s.cols));
    for (float& v : x) v = normal(rng);
    const RandomMatrices half_scales = with_half_scales(float_scales);  // named: views point into it
    for (const RandomMatrices* matrices : {&float_scales, &half_scales})
    for (Int4Isa isa : available_isas()) {
      const RandomMatrices& w = *matrices;
      const std::vector<double> ref = reference(w.view, x, s.tokens);
      std::string trace = w.view.half_scales != nullptr ? "half scales, rows " : "rows ";  // appended: GCC 12 warns (-Wrestrict) on "..." + to_string()
      trace += std::to_string(s.rows) + ", cols " + std::to_string(s.cols) + ", block " + std::to_string(s.block) + ", tokens " +
               std::to_string(s.tokens) + ", " + to_string(isa);
      SCOPED_TRACE(trace);
      std::vector<float> out(ref.size(), -1.0f);
      run_int4_matmul(w.view, x.data(), s.tokens, out.data(), serial_for(), isa);
      EXPECT_LT(relative_error(out, ref), 0.03);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2 * shapes.size() * available_isas().size());
  std::printf("[ int4 matmul ] %zu shape x instruction-set cases\n", checked);
}

// Activations int8 holds exactly and power-of-two scales: every instruction set equals the exact
// products, across the pass boundary (260 tokens) and the row tasks.
TEST(Int4MatMul, IsExactWhereInt8IsExact) {
  std::mt19937 rng(11);
  const std::int64_t rows = 70, cols = 128, tokens = 260;
  const RandomMatrices float_scales = random_matrices(1, rows, cols, 32, rng, /*exact=*/true);
  std::vector<float> x(static_cast<std::size_t>(tokens * cols));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = i % 32 == 3 ? -127.0f : static_cast<float>(static_cast<int>(rng() % 255) - 127);
  const std::vector<double> ref = reference(float_scales.view, x, tokens);
  std::size_t checked = 0;
  // Powers of two are exact as half floats too: both kinds of scales give the exact products.
  const RandomMatrices half_scales = with_half_scales(float_scales);  // named: views point into it
  for (const RandomMatrices* matrices : {&float_scales, &half_scales})
  for (const std::int64_t count : {std::int64_t{1}, tokens}) {
    const RandomMatrices& w = *matrices;
    for (Int4Isa isa : available_isas()) {
      SCOPED_TRACE(to_string(isa) + ", " + std::to_string(count) + " tokens");
      std::vector<float> out(static_cast<std::size_t>(count * rows), 0.0f);
      run_int4_matmul(w.view, x.data(), count, out.data(), serial_for(), isa);
      expect_exact_products(out, ref, rows, checked);
    }
  }
  EXPECT_EQ(checked, 2 * available_isas().size() * rows * (1 + tokens));
}

TEST(Int4MatMul, RefusesMatricesItCannotReadNamingThem) {
  std::mt19937 rng(3);
  const RandomMatrices w = random_matrices(1, 8, 96, 32, rng);
  std::vector<float> x(96, 1.0f), out(8);
  Int4Matrices bad = w.view;
  bad.block = 96;  // a multiple of 32, not a power of two
  EXPECT_THROW(run_int4_matmul(bad, x.data(), 1, out.data(), serial_for()), InvalidInput);
  bad = w.view;
  bad.block = 64;  // 96 columns are not whole blocks of 64
  try {
    check_int4_matmul(bad);
    FAIL() << "accepted 96 columns in blocks of 64";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("[8, 96] in blocks of 64"), std::string::npos) << e.what();
  }
  bad = w.view;
  bad.experts = 2;
  EXPECT_THROW(check_int4_matmul(bad), InvalidInput);
}

}  // namespace
}  // namespace q3vl::kernels
