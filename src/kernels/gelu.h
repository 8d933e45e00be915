#pragma once
// The tanh approximation of GELU (HF's gelu_pytorch_tanh, ONNX Runtime's FastGelu) with a bias, in
// place over rows: the vision MLP's activation, run by its up projection (Int8MatMul gelu = 1) on
// the rows it just wrote, so no second buffer of the MLP's width is ever allocated. FastGelu with a
// bias allocates a scratch copy of its whole input: at 4x the hidden size per patch, the largest
// buffer of a big image's vision pass.
#include <cstdint>

#include "kernels/int4_matrices.h"

namespace q3vl::kernels {

// values[r * width + i] = gelu_tanh(values[r * width + i] + bias[i]) for `rows` rows; bias may be
// null (none). gelu_tanh(x) = x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))), computed as
// x / (1 + e^-2u), which is the same function.
void bias_gelu_tanh_rows(float* values, std::int64_t rows, std::int64_t width, const float* bias, Int4Isa isa = Int4Isa::Best);

// values[r * width + i] += bias[i] for `rows` rows.
void add_bias_rows(float* values, std::int64_t rows, std::int64_t width, const float* bias);

// A linear layer's epilogue in place over its output rows, 16 rows a task: the bias and, with
// `gelu`, bias_gelu_tanh_rows (bias may then be null); nothing when neither is asked.
void bias_activation_rows(float* values, std::int64_t rows, std::int64_t width, const float* bias, bool gelu, const ParallelFor& parallel,
                          Int4Isa isa = Int4Isa::Best);

}  // namespace q3vl::kernels
