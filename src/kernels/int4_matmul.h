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

namespace q3vl::kernels {

// Throws InvalidInput unless `weights` is one matrix of whole blocks whose size is a power of two.
void check_int4_matmul(const Int4Matrices& weights);

// out[t, r] = dot(x[t, :], dequantized row r) for `tokens` rows x [tokens, cols], out [tokens, rows].
void run_int4_matmul(const Int4Matrices& weights, const float* x, std::int64_t tokens, float* out, const ParallelFor& parallel,
                     Int4Isa isa = Int4Isa::Best);

}  // namespace q3vl::kernels
