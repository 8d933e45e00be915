#pragma once
// q3vl's CPU kernel for a dense int4 linear layer (docs: README "Speed"): what MatMulNBits computes
// at accuracy level 4 (activations quantized to int8 in groups of 32), reading the 4-bit weights
// where they lie in the memory-mapped package.
//
// Why our own: ONNX Runtime 1.29 repacks every MatMulNBits weight when a session is made, on one
// thread (most of a 2B decoder's load time, and a second copy of the weights in memory); this kernel
// needs no packing, so the decoder is ready as soon as its file is mapped.
#include <cstdint>

#include "kernels/int4_matrices.h"
#include "kernels/int4_rows.h"

namespace q3vl::kernels {

// Throws InvalidInput unless `weights` is one matrix of whole blocks whose size is a power of two.
void check_int4_matmul(const Int4Matrices& weights);

// out[t, r] = dot(x[t, :], dequantized row r) for `tokens` rows x [tokens, cols], out [tokens, rows].
void run_int4_matmul(const Int4Matrices& weights, const float* x, std::int64_t tokens, float* out, const ParallelFor& parallel,
                     Int4Isa isa = Int4Isa::Best);

// The dense product over row tasks (int4 and int8): `matrix` describes every row from row 0 (no
// activations, tokens or output yet); x's rows are `x_cols` wide (matrix.cols, or fewer where the
// weight rows are padded to whole blocks, int8 only: the rest count as zeros); activations are
// quantized in groups of `group`, up to 256 tokens a pass.
void run_rows_matmul(const RowsJob& matrix, std::int64_t x_cols, std::int64_t group, RowsKernel kernel, const float* x, std::int64_t tokens,
                     float* out, const ParallelFor& parallel);

}  // namespace q3vl::kernels
