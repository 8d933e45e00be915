#include "ort/int4_matmul_op.h"

#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/int4_matmul.h"
#include "ort/custom_op_support.h"
#include "package/format.h"

namespace q3vl {
namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// The output's shape: A's, symbolic dimensions included, with the last one N (B's first). Written
// through the C API: the C++ ShapeInferContext turns symbolic dimensions into the value -2.
OrtStatusPtr infer_output_shape(const OrtCustomOp* /*op*/, OrtShapeInferContext* context) {
  const OrtApi& api = Ort::GetApi();
  OrtTensorTypeAndShapeInfo* a = nullptr;  // the context's own
  OrtTensorTypeAndShapeInfo* b = nullptr;
  if (OrtStatusPtr status = api.ShapeInferContext_GetInputTypeShape(context, 0, &a)) return status;
  if (OrtStatusPtr status = api.ShapeInferContext_GetInputTypeShape(context, 1, &b)) return status;
  std::size_t rank = 0, b_rank = 0;
  if (OrtStatusPtr status = api.GetDimensionsCount(a, &rank)) return status;
  if (OrtStatusPtr status = api.GetDimensionsCount(b, &b_rank)) return status;
  if (rank == 0 || b_rank != 3) return Ort::Status("Int4MatMul: A must have a last dimension and B three", ORT_INVALID_GRAPH).release();
  std::vector<std::int64_t> dims(rank), b_dims(b_rank);
  std::vector<const char*> names(rank);
  if (OrtStatusPtr status = api.GetDimensions(a, dims.data(), rank)) return status;
  if (OrtStatusPtr status = api.GetSymbolicDimensions(a, names.data(), rank)) return status;
  if (OrtStatusPtr status = api.GetDimensions(b, b_dims.data(), b_rank)) return status;
  dims.back() = b_dims[0];
  names.back() = "";
  OrtTensorTypeAndShapeInfo* out = nullptr;
  if (OrtStatusPtr status = api.CreateTensorTypeAndShapeInfo(&out)) return status;
  OrtStatusPtr status = api.SetTensorElementType(out, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
  if (status == nullptr) status = api.SetDimensions(out, dims.data(), rank);
  if (status == nullptr) status = api.SetSymbolicDimensions(out, names.data(), rank);
  if (status == nullptr) status = api.ShapeInferContext_SetOutputTypeShape(context, 0, out);
  api.ReleaseTensorTypeAndShapeInfo(out);
  return status;
}

}  // namespace

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
    kernels::Int4Matrices w{b.GetTensorData<std::uint8_t>(), scales.GetTensorData<float>(), 1, N, K, block};
    kernels::check_int4_matmul(w);
    if (b_shape != std::vector<std::int64_t>{N, K / block, block / 2} ||
        scales.GetTensorTypeAndShapeInfo().GetElementCount() != static_cast<std::size_t>(N * (K / block))) {
      throw std::runtime_error("Int4MatMul: B " + shape_text(b_shape) + " and " +
                               std::to_string(scales.GetTensorTypeAndShapeInfo().GetElementCount()) + " scales do not describe [N=" +
                               std::to_string(N) + ", K=" + std::to_string(K) + "] in blocks of " + std::to_string(block));
    }
    std::vector<std::int64_t> shape = a.GetTensorTypeAndShapeInfo().GetShape();
    if (shape.empty() || shape.back() != K) throw std::runtime_error("Int4MatMul: A " + shape_text(shape) + " does not end in K=" + std::to_string(K));
    const std::int64_t tokens = static_cast<std::int64_t>(a.GetTensorTypeAndShapeInfo().GetElementCount()) / K;
    shape.back() = N;
    Ort::UnownedValue y = context.GetOutput(0, shape);
    kernels::run_int4_matmul(w, a.GetTensorData<float>(), tokens, y.GetTensorMutableData<float>(), ort_ops::session_parallel_for(context));
    return nullptr;
  } catch (const std::exception& e) {
    return ort_ops::error_status(e);
  }
}

Int4MatMulOp::Int4MatMulOp() { OrtCustomOp::InferOutputShapeFn = infer_output_shape; }

OrtStatusPtr Int4MatMulOp::CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
  try {
    *kernel = new Int4MatMulKernel(info);
    return nullptr;
  } catch (const std::exception& e) {
    return ort_ops::error_status(e);
  }
}

const char* Int4MatMulOp::GetName() const { return package::kInt4MatMulOp; }

}  // namespace q3vl
