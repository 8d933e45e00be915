#pragma once
// text.experts.onnx (package/format.h): text.onnx's graph with each QMoE node over int4 experts
// replaced by q3vl's Int4Experts op (ort/expert_op.h) on the same inputs, so q3vl's runtime runs
// the experts with its own kernel while every other runtime reads text.onnx unchanged. Both graphs
// name the same weights in text.onnx.data.
#include <cstdint>
#include <filesystem>

#include <onnx/onnx_pb.h>

namespace q3vl {

// Rewrites `model` in place; returns how many nodes it replaced (0: leave no expert graph).
// Only QMoE nodes with 4-bit symmetric experts, fused SwiGLU and no biases are replaced.
std::int64_t use_int4_expert_kernel(onnx::ModelProto& model);

}  // namespace q3vl
