#pragma once
// text.kernels.onnx (package/format.h): text.onnx's graph with each int4 MatMulNBits and QMoE node
// replaced by q3vl's Int4MatMul and Int4Experts ops (ort/q3vl_ops.h) on the same inputs, so q3vl's
// runtime runs them with its own kernels while every other runtime reads text.onnx unchanged. Both
// graphs name the same weights in text.onnx.data.
#include <cstdint>

#include <onnx/onnx_pb.h>

namespace q3vl {

struct KernelRewrite {
  std::int64_t matmuls = 0;  // MatMulNBits -> Int4MatMul
  std::int64_t experts = 0;  // QMoE -> Int4Experts
  std::int64_t total() const { return matmuls + experts; }
};

// Rewrites `model` in place; returns how many nodes it replaced (none: leave no kernel graph).
// Only nodes whose weights the kernels read as they are: MatMulNBits with 4-bit symmetric weights
// in whole blocks, float scales, no bias or group index, accuracy level 4 (int8 activations); QMoE
// with 4-bit symmetric experts, fused SwiGLU and no biases.
KernelRewrite use_q3vl_kernels(onnx::ModelProto& model);

}  // namespace q3vl
