#pragma once
// What the int4 and int8 kernel tests share: random block-quantized matrices, the plain dequantized
// value of one weight, the error measure, the exact comparison, and the instruction sets this CPU runs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/int4_matrices.h"
#include "math/half_float.h"

namespace q3vl::kernels {

struct RandomMatrices {
  std::vector<std::uint8_t> packed;
  std::vector<float> scales;
  std::vector<std::uint16_t> half_scales;
  Int4Matrices view;
};

// Random nibbles; scales random, or powers of two when `exact` (products then stay exact in float).
inline RandomMatrices random_matrices(std::int64_t experts, std::int64_t rows, std::int64_t cols, std::int64_t block, std::mt19937& rng,
                               bool exact = false) {
  RandomMatrices m;
  m.packed.resize(static_cast<std::size_t>(experts * rows * cols / 2));
  for (std::uint8_t& b : m.packed) b = static_cast<std::uint8_t>(rng() & 0xFF);
  const std::int64_t blocks = (cols + block - 1) / block;
  m.scales.resize(static_cast<std::size_t>(experts * rows * blocks));
  std::uniform_real_distribution<float> scale(0.002f, 0.02f);
  for (float& s : m.scales) s = exact ? std::ldexp(1.0f, -static_cast<int>(rng() % 4) - 8) : scale(rng);
  m.view = {m.packed.data(), m.scales.data(), experts, rows, cols, block};
  return m;
}

// The same matrices with their scales as half floats (what text.kernels.onnx holds). The view points
// into the returned object's vectors: keep it in a named variable (a copy's view points elsewhere).
inline RandomMatrices with_half_scales(RandomMatrices m) {
  m.half_scales.resize(m.scales.size());
  for (std::size_t i = 0; i < m.scales.size(); ++i) m.half_scales[i] = float_to_fp16(m.scales[i]);
  m.scales.clear();
  m.view.packed = m.packed.data();
  m.view.scales = nullptr;
  m.view.half_scales = m.half_scales.data();
  return m;
}

inline double weight(const Int4Matrices& m, std::int64_t e, std::int64_t r, std::int64_t c) {
  const std::uint8_t byte = m.packed[static_cast<std::size_t>((e * m.rows + r) * (m.cols / 2) + c / 2)];
  const int nibble = c % 2 == 0 ? byte & 0x0F : byte >> 4;
  const std::int64_t blocks = (m.cols + m.block - 1) / m.block;
  const std::size_t at = static_cast<std::size_t>((e * m.rows + r) * blocks + c / m.block);
  return (nibble - 8) * static_cast<double>(m.scales != nullptr ? m.scales[at] : fp16_to_float(m.half_scales[at]));
}

// out[t * rows + r] = sum over c of weight(r, c) * x[t * cols + c], in double precision: the plain
// product the kernels are checked against, `weight` the dequantized value as the op defines it.
template <typename Weight>
std::vector<double> dense_reference(std::int64_t rows, std::int64_t cols, const Weight& weight, const std::vector<float>& x,
                                    std::int64_t tokens) {
  std::vector<double> out(static_cast<std::size_t>(tokens * rows), 0.0);
  for (std::int64_t t = 0; t < tokens; ++t) {
    for (std::int64_t r = 0; r < rows; ++r) {
      double sum = 0;
      for (std::int64_t c = 0; c < cols; ++c) sum += weight(r, c) * x[static_cast<std::size_t>(t * cols + c)];
      out[static_cast<std::size_t>(t * rows + r)] = sum;
    }
  }
  return out;
}

// max |ours - ref| over the largest |ref|.
inline double relative_error(const std::vector<float>& ours, const std::vector<double>& ref) {
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    err = std::max(err, std::fabs(ours[i] - ref[i]));
    scale = std::max(scale, std::fabs(ref[i]));
  }
  return err / scale;
}

// The exact cases (int8-exact activations, power-of-two scales): every out[t * rows + r] equals the
// reference's (which may hold more tokens), the first that does not named by token and row; adds
// how many it compared to `checked`.
inline void expect_exact_products(const std::vector<float>& out, const std::vector<double>& ref, std::int64_t rows, std::size_t& checked) {
  ASSERT_LE(out.size(), ref.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    ASSERT_EQ(out[i], ref[i]) << "token " << i / static_cast<std::size_t>(rows) << " row " << i % static_cast<std::size_t>(rows);
    ++checked;
  }
}

inline std::vector<Int4Isa> available_isas() {
  std::vector<Int4Isa> isas;
  for (Int4Isa isa : kEveryInt4Isa) {
    if (int4_isa_available(isa)) isas.push_back(isa);
  }
  return isas;
}

}  // namespace q3vl::kernels
