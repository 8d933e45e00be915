#include "ort/int4_matmul_op.h"

#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/int4_matmul.h"
#include "ort/custom_op_support.h"
#include "package/format.h"
#include "util/shape.h"

namespace q3vl {

Int4MatMulKernel::Int4MatMulKernel(const OrtKernelInfo* info) {
  const Ort::ConstKernelInfo kernel_info(info);
  K = kernel_info.GetAttribute<std::int64_t>("K");
  N = kernel_info.GetAttribute<std::int64_t>("N");
  block = kernel_info.GetAttribute<std::int64_t>("block_size");
}

OrtStatusPtr Int4MatMulKernel::ComputeV2(OrtKernelContext* raw) {
  try {
    Ort::KernelContext context(raw);
    const Ort::ConstValue a = context.GetInput(0);
    const Ort::ConstValue b = context.GetInput(1);
    const Ort::ConstValue scales = context.GetInput(2);
    const std::vector<std::int64_t> b_shape = b.GetTensorTypeAndShapeInfo().GetShape();
    kernels::Int4Matrices w{b.GetTensorData<std::uint8_t>(), nullptr, 1, N, K, block};
    ort_ops::set_scales(w, scales, "Int4MatMul");
    kernels::check_int4_matmul(w);
    if (b_shape != std::vector<std::int64_t>{N, K / block, block / 2} ||
        scales.GetTensorTypeAndShapeInfo().GetElementCount() != static_cast<std::size_t>(N * (K / block))) {
      throw std::runtime_error("Int4MatMul: B " + shape_string(b_shape) + " and " +
                               std::to_string(scales.GetTensorTypeAndShapeInfo().GetElementCount()) + " scales do not describe [N=" +
                               std::to_string(N) + ", K=" + std::to_string(K) + "] in blocks of " + std::to_string(block));
    }
    std::vector<std::int64_t> shape = a.GetTensorTypeAndShapeInfo().GetShape();
    if (shape.empty() || shape.back() != K) throw std::runtime_error("Int4MatMul: A " + shape_string(shape) + " does not end in K=" + std::to_string(K));
    const std::int64_t tokens = static_cast<std::int64_t>(a.GetTensorTypeAndShapeInfo().GetElementCount()) / K;
    shape.back() = N;
    Ort::UnownedValue y = context.GetOutput(0, shape);
    kernels::run_int4_matmul(w, a.GetTensorData<float>(), tokens, y.GetTensorMutableData<float>(), ort_ops::session_parallel_for(context));
    return nullptr;
  } catch (const std::exception& e) {
    return ort_ops::error_status(e);
  }
}

// The output's shape: A's, symbolic dimensions included, with the last one N (B's first).
Int4MatMulOp::Int4MatMulOp() {
  OrtCustomOp::InferOutputShapeFn = [](const OrtCustomOp* op, OrtShapeInferContext* context) -> OrtStatusPtr {
    std::vector<std::int64_t> dims, b_dims;
    std::vector<const char*> names, b_names;
    if (OrtStatusPtr status = ort_ops::input_shape(context, 0, dims, names)) return status;
    if (OrtStatusPtr status = ort_ops::input_shape(context, 1, b_dims, b_names)) return status;
    if (dims.empty() || b_dims.size() != 3) return Ort::Status("Int4MatMul: A must have a last dimension and B three", ORT_INVALID_GRAPH).release();
    dims.back() = b_dims[0];
    names.back() = b_names[0];
    return ort_ops::set_float_output_shape(context, 0, dims, names, package::kInt4MatMulOp,
                                          static_cast<const Int4MatMulOp*>(op)->fresh_names);
  };
}

OrtStatusPtr Int4MatMulOp::CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
  return ort_ops::create_kernel<Int4MatMulKernel>(info, kernel);
}

const char* Int4MatMulOp::GetName() const { return package::kInt4MatMulOp; }

}  // namespace q3vl
