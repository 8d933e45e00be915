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
// for weights of `weight_bits` 4 or 8. For int4 weights they are stored in the order in which packed
// weight bytes unpack (low nibbles, then high nibbles), so that no shuffle is needed: a group's
// even-offset values, then its odd-offset ones. Groups of 32 go in pairs, as the vector kernels
// unpack 32 weight bytes (two groups) at once: the pair's first group's evens, the second's evens,
// the first's odds, the second's odds; a last unpaired group as above. For int8 weights (one byte a
// value) they are stored in order, and a group's two "halves" are its first and second half; a
// short last group is padded with zeros to a whole one (weight rows padded to whole blocks).
struct QuantizedActivations {
  std::int64_t cols = 0, group = 0, groups = 0, weight_bits = 4;
  std::vector<std::int8_t> values;  // [rows, groups * group]
  std::vector<float> scales;        // [rows, groups]: value = q * scale
  std::vector<float> offsets;       // [rows, groups]: zero point (8 or 128) * sum(q) * scale, the weights' zero point's share
  bool vector_quantizer = false;    // set by reset: groups of 32 on an x86 vector unit

  // Sizes the rows and picks the quantizer for `isa` (Best: the widest this CPU has), once per
  // pass rather than per row.
  void reset(std::int64_t rows, std::int64_t columns, std::int64_t group_size, std::int64_t bits_of_weights = 4,
             Int4Isa isa = Int4Isa::Best);
  // Quantizes `cols` floats into row `row` (round to nearest, scale max|x| / 127). Every
  // instruction set gives the same bytes, scales and offsets.
  void quantize(std::int64_t row, const float* x);
  const std::int8_t* row_values(std::int64_t row) const { return values.data() + row * groups * group; }
  // Where group g's even-offset and odd-offset values start within a row.
  struct Halves {
    std::int64_t evens, odds;
  };
  Halves halves(std::int64_t g) const {
    const std::int64_t start = g * group;
    // int8: whole halves even for a short last group, whose missing values are zeros.
    if (weight_bits == 8) return {start, start + group / 2};
    if (group == 32 && (g | 1) < groups) return {(g & ~std::int64_t{1}) * 32 + (g & 1) * 16, (g & ~std::int64_t{1}) * 32 + 32 + (g & 1) * 16};
    return {start, start + std::min(group, cols - start) / 2};
  }
};

// Groups of 32 (what the vector kernels take) when the blocks and rows divide into them; otherwise one
// group per block (small test models, block 16), which only the portable kernel takes.
inline std::int64_t activation_group(std::int64_t block, std::int64_t cols) { return block % 32 == 0 && cols % 32 == 0 ? 32 : block; }
inline std::int64_t activation_group(const Int4Matrices& m) { return activation_group(m.block, m.cols); }

// out[t * out_stride + r] = dot(weight row r, activation row tokens[t]) for r < rows, t < token_count.
// Weights of `bits` 4 (two a byte, low nibble first, zero point 8: Int4Matrices) or 8 (a byte each,
// zero point 128: MatMulNBits' 8-bit layout, Int8Matrix).
struct RowsJob {
  const std::uint8_t* packed = nullptr;  // row 0's bytes; row r at packed + r * cols * bits / 8
  const float* scales = nullptr;         // row 0's block scales; row r at scales + r * blocks_per_row
  std::int64_t rows = 0, cols = 0, block = 0, blocks_per_row = 0;
  const QuantizedActivations* activations = nullptr;
  const std::int64_t* tokens = nullptr;  // activation rows to use
  std::int64_t token_count = 0;
  float* out = nullptr;
  std::int64_t out_stride = 0;
  const std::uint16_t* half_scales = nullptr;  // `scales` as half floats, when `scales` is null
  std::int64_t bits = 4;
  std::size_t row_bytes() const { return static_cast<std::size_t>(cols * bits / 8); }
  // A row's bytes in memory, its scales included.
  std::size_t row_bytes_with_scales() const {
    return row_bytes() + static_cast<std::size_t>(blocks_per_row) * (scales != nullptr ? sizeof(float) : sizeof(std::uint16_t));
  }
};

void int4_rows_portable(const RowsJob& job);  // int8 weights too
// Points `job` at rows [first, ...) of matrix `e` of `m` (float or half scales, as `m` has them).
void point_at_rows(RowsJob& job, const Int4Matrices& m, std::int64_t e, std::int64_t first);
using RowsKernel = void (*)(const RowsJob&);
// The row kernel for `isa` (Best: the widest this CPU has) and activation groups of `group`: a
// vector one for groups of 32, the portable one otherwise. Throws Unsupported if the CPU lacks `isa`.
RowsKernel int4_rows_kernel(Int4Isa isa, std::int64_t group);
// The row kernel for int8 weights and activation groups of `group`: for groups of 32 the panels of
// `isa` (Best: the widest this CPU has), the portable one otherwise. Throws Unsupported if the CPU
// lacks `isa`.
RowsKernel int8_rows_kernel(Int4Isa isa, std::int64_t group);
// Need group == 32 and cols % 32 == 0, block % 32 == 0. Per instruction set, the row tiles
// (int4_rows_simd.inc) for few tokens and the panels (panel.h) for many; int4_rows_kernel switches
// between them at the instruction set's kPanelTokens*.
void int4_row_tiles_avx2(const RowsJob& job);
void int4_panels_avx2(const RowsJob& job);
void int8_panels_avx2(const RowsJob& job);  // any number of tokens
// AVX-VNNI: as AVX2's, with 256-bit dpbusd (int4_rows_avxvnni.cpp, panels_avxvnni.cpp).
void int4_row_tiles_avxvnni(const RowsJob& job);
void int4_panels_avxvnni(const RowsJob& job);
void int8_panels_avxvnni(const RowsJob& job);  // any number of tokens
void int4_row_tiles_avx512vnni(const RowsJob& job);
// Any number of tokens, int4 or int8 weights (panels_avx512vnni.cpp).
void rows_panels_avx512vnni(const RowsJob& job);
// Tokens from which interleaving 16 rows into a panel pays for itself (int4 weights; measured on a
// matrix in cache, where the interleaving's share is largest).
constexpr std::int64_t kPanelTokensAvx512 = 5;
constexpr std::int64_t kPanelTokensAvx2 = 12;
constexpr std::int64_t kPanelTokensAvxVnni = 10;  // measured on this machine's AVX-VNNI: the two cross between 8 and 12

}  // namespace q3vl::kernels
