#include "ort/patch_mlp_op.h"

#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "ort/custom_op_support.h"
#include "package/format.h"
#include "util/shape.h"

namespace q3vl {

PatchMlpKernel::PatchMlpKernel(const OrtKernelInfo* info, kernels::PatchMlpScratch* workspaces) : scratch(*workspaces) {
  const Ort::ConstKernelInfo kernel_info(info);
  K = kernel_info.GetAttribute<std::int64_t>("K");
  N = kernel_info.GetAttribute<std::int64_t>("N");
  block = kernel_info.GetAttribute<std::int64_t>("block_size");
}

OrtStatusPtr PatchMlpKernel::ComputeV2(OrtKernelContext* raw) {
  try {
    Ort::KernelContext context(raw);
    const char* op = package::kPatchMlpOp;
    // A matrix [rows, cols] from inputs B and scales, each checked against the attributes.
    const auto matrix = [&](std::size_t b_index, std::int64_t rows, std::int64_t cols, const char* which) {
      const Ort::ConstValue b = context.GetInput(b_index);
      const Ort::ConstValue scales = context.GetInput(b_index + 1);
      const auto scale_info = scales.GetTensorTypeAndShapeInfo();
      const std::vector<std::int64_t> shape = b.GetTensorTypeAndShapeInfo().GetShape();
      if (!ort_ops::quantized_weights_describe(shape, scale_info.GetElementCount(), rows, cols, block, 8) ||
          scale_info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
        throw std::runtime_error(std::string(op) + ": " + which + " B " + shape_string(shape) + " and " + std::to_string(scale_info.GetElementCount()) +
                                 " float scales do not describe [" + std::to_string(rows) + ", " + std::to_string(cols) + "] in blocks of " +
                                 std::to_string(block));
      }
      return kernels::Int8Matrix{b.GetTensorData<std::uint8_t>(), scales.GetTensorData<float>(), rows, cols, block};
    };
    const auto bias = [&](std::size_t index, std::int64_t count, const char* which) -> const float* {
      if (index >= context.GetInputCount()) return nullptr;
      const Ort::ConstValue value = context.GetInput(index);
      if (static_cast<const OrtValue*>(value) == nullptr) return nullptr;
      if (value.GetTensorTypeAndShapeInfo().GetElementCount() != static_cast<std::size_t>(count)) {
        throw std::runtime_error(std::string(op) + ": the " + which + " bias must be " + std::to_string(count) + " floats");
      }
      return value.GetTensorData<float>();
    };
    kernels::PatchMlp mlp;
    mlp.up = matrix(1, N, K, "up");
    mlp.up_bias = bias(3, N, "up");
    mlp.down = matrix(4, K, N, "down");
    mlp.down_bias = bias(6, K, "down");
    const Ort::ConstValue x = context.GetInput(0);
    const std::vector<std::int64_t> shape = x.GetTensorTypeAndShapeInfo().GetShape();
    if (shape.empty() || shape.back() != K) throw std::runtime_error(std::string(op) + ": x " + shape_string(shape) + " does not end in K=" + std::to_string(K));
    const std::int64_t tokens = static_cast<std::int64_t>(x.GetTensorTypeAndShapeInfo().GetElementCount()) / K;
    Ort::UnownedValue y = context.GetOutput(0, shape);
    kernels::run_patch_mlp(mlp, x.GetTensorData<float>(), tokens, y.GetTensorMutableData<float>(), ort_ops::session_parallel_for(context), scratch);
    return nullptr;
  } catch (const std::exception& e) {
    return ort_ops::error_status(e);
  }
}

// The output's shape: x's.
PatchMlpOp::PatchMlpOp() {
  OrtCustomOp::InferOutputShapeFn = [](const OrtCustomOp* op, OrtShapeInferContext* context) -> OrtStatusPtr {
    return ort_ops::float_output_shaped_as_input0(context, package::kPatchMlpOp, static_cast<const PatchMlpOp*>(op)->fresh_names);
  };
}

OrtStatusPtr PatchMlpOp::CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
  return ort_ops::create_kernel<PatchMlpKernel>(info, kernel, &scratch);
}

const char* PatchMlpOp::GetName() const { return package::kPatchMlpOp; }

}  // namespace q3vl
