#pragma once
// q3vl's CPU kernel for a dense int8 linear layer: what MatMulNBits with 8-bit symmetric weights
// computes at accuracy level 4 (activations quantized to int8 in groups of 32). Used by the vision
// encoder's kernel graph (vision.kernels.onnx): an image is hundreds of tokens, which the AVX-512
// VNNI panels (kernels/panels_avx512vnni.cpp) multiply at several times ONNX Runtime's float rate.
#include <cstdint>

#include "kernels/int4_matrices.h"

namespace q3vl::kernels {

// MatMulNBits' 8-bit B without zero points: row r (of `rows`) is blocks() whole blocks at
// values + r * row_bytes(), byte c < cols standing for (byte - 128) * scales[r * blocks() + c / block].
// Where cols is not a multiple of block (the vision MLP of the 8B and larger: 4304 columns), the
// last block of each row is padded, as MatMulNBits stores it; the padding multiplies zeros.
struct Int8Matrix {
  const std::uint8_t* values = nullptr;
  const float* scales = nullptr;
  std::int64_t rows = 0, cols = 0, block = 0;

  std::int64_t blocks() const { return block > 0 ? (cols + block - 1) / block : 0; }
  std::int64_t row_bytes() const { return blocks() * block; }
};

// Throws InvalidInput unless `weights` has rows, columns, blocks of a power of two and scales.
void check_int8_matmul(const Int8Matrix& weights);

// out[t, r] = dot(x[t, :], dequantized row r) for `tokens` rows x [tokens, cols], out [tokens, rows].
void run_int8_matmul(const Int8Matrix& weights, const float* x, std::int64_t tokens, float* out, const ParallelFor& parallel,
                     Int4Isa isa = Int4Isa::Best);

}  // namespace q3vl::kernels
