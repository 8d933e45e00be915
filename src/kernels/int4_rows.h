#pragma once
// The inner loop of the int4 kernels (dense and experts): rows of one block-quantized matrix times a few
// int8-quantized activation rows. One implementation (int4_rows_simd.inc) is compiled once per
// instruction set; int4_rows_portable is the plain C++ one, which also takes any group size.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/int4_matrices.h"

namespace q3vl::kernels {

// Activation rows of `cols` values quantized to int8 in groups of `group` (the last may be short),
// stored in the order in which packed weight bytes unpack (low nibbles, then high nibbles), so that
// no shuffle is needed: a group's even-offset values, then its odd-offset ones. Groups of 32 go in
// pairs, as the vector kernels unpack 32 weight bytes (two groups) at once: the pair's first group's
// evens, the second's evens, the first's odds, the second's odds; a last unpaired group as above.
struct QuantizedActivations {
  std::int64_t cols = 0, group = 0, groups = 0;
  std::vector<std::int8_t> values;  // [rows, groups * group]
  std::vector<float> scales;        // [rows, groups]: value = q * scale
  std::vector<float> offsets;       // [rows, groups]: 8 * sum(q) * scale, the weights' zero point's share

  void reset(std::int64_t rows, std::int64_t columns, std::int64_t group_size);
  // Quantizes `cols` floats into row `row` (round to nearest, scale max|x| / 127).
  void quantize(std::int64_t row, const float* x);
  const std::int8_t* row_values(std::int64_t row) const { return values.data() + row * groups * group; }
  // Where group g's even-offset and odd-offset values start within a row.
  struct Halves {
    std::int64_t evens, odds;
  };
  Halves halves(std::int64_t g) const {
    const std::int64_t start = g * group;
    if (group == 32 && (g | 1) < groups) return {(g & ~std::int64_t{1}) * 32 + (g & 1) * 16, (g & ~std::int64_t{1}) * 32 + 32 + (g & 1) * 16};
    return {start, start + std::min(group, cols - start) / 2};
  }
};

// Groups of 32 (what the vector kernels take) when the blocks and rows divide into them; otherwise one
// group per block (small test models, block 16), which only the portable kernel takes.
inline std::int64_t activation_group(const Int4Matrices& m) { return m.block % 32 == 0 && m.cols % 32 == 0 ? 32 : m.block; }

// out[t * out_stride + r] = dot(weight row r, activation row tokens[t]) for r < rows, t < token_count.
struct RowsJob {
  const std::uint8_t* packed = nullptr;  // row 0's bytes; row r at packed + r * cols / 2
  const float* scales = nullptr;         // row 0's block scales; row r at scales + r * blocks_per_row
  std::int64_t rows = 0, cols = 0, block = 0, blocks_per_row = 0;
  const QuantizedActivations* activations = nullptr;
  const std::int64_t* tokens = nullptr;  // activation rows to use
  std::int64_t token_count = 0;
  float* out = nullptr;
  std::int64_t out_stride = 0;
  const std::uint16_t* half_scales = nullptr;  // `scales` as half floats, when `scales` is null
};

void int4_rows_portable(const RowsJob& job);
// Points `job` at rows [first, ...) of matrix `e` of `m` (float or half scales, as `m` has them).
void point_at_rows(RowsJob& job, const Int4Matrices& m, std::int64_t e, std::int64_t first);
using RowsKernel = void (*)(const RowsJob&);
// The row kernel for `isa` (Best: the widest this CPU has) and activation groups of `group`: a
// vector one for groups of 32, the portable one otherwise. Throws Unsupported if the CPU lacks `isa`.
RowsKernel int4_rows_kernel(Int4Isa isa, std::int64_t group);
// Need group == 32 and cols % 32 == 0, block % 32 == 0.
void int4_rows_avx2(const RowsJob& job);
void int4_rows_avx512vnni(const RowsJob& job);

}  // namespace q3vl::kernels
