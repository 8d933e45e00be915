#pragma once
// SwiGLU, silu(gate) * up with silu(x) = x / (1 + e^-x), over rows of gate and up values: the
// activation between a gated MLP's two projections, vectorized (ONNX Runtime computes it as
// separate Sigmoid and Mul nodes; the int4 experts computed it one std::exp at a time).
#include <cstdint>

#include "kernels/int4_matrices.h"

namespace q3vl::kernels {

// How a row holds its 2 * width values: the gates then the ups (a stacked gate_up projection
// split in halves), or interleaved gate, up, gate, up (QMoE's fused SwiGLU layout).
enum class GateUpLayout { Halves, Interleaved };

// out[r * width + i] = silu(gate i of row r) * (up i of row r), rows of 2 * width values at
// gate_up + r * 2 * width. For Interleaved, out may be gate_up itself (each row written in place).
void swiglu_rows(const float* gate_up, std::int64_t rows, std::int64_t width, GateUpLayout layout, float* out, Int4Isa isa = Int4Isa::Best);

}  // namespace q3vl::kernels
