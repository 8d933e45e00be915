#pragma once
// Int4MatMul (domain package::kQ3vlOpDomain): a dense int4 linear layer on q3vl's kernel
// (kernels/int4_matmul.h), in place of MatMulNBits with 4-bit symmetric weights.
//
// Inputs as MatMulNBits': A [..., K] float, B [N, K/block, block/2] uint8, scales [N * K/block]
// float or float16 (any shape of that many values); attributes K, N, block_size; output [..., N].
#include <atomic>
#include <cstdint>

#include <onnxruntime_cxx_api.h>

namespace q3vl {

struct Int4MatMulKernel {
  explicit Int4MatMulKernel(const OrtKernelInfo* info);
  OrtStatusPtr ComputeV2(OrtKernelContext* context);

  std::int64_t K = 0, N = 0, block = 0;
};

struct Int4MatMulOp : Ort::CustomOpBase<Int4MatMulOp, Int4MatMulKernel, /*WithStatus=*/true> {
  Int4MatMulOp();
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const;
  std::size_t GetInputTypeCount() const { return 3; }
  ONNXTensorElementDataType GetInputType(std::size_t index) const {
    // Scales: float, or float16 in text.kernels.onnx (any type here; the kernel checks).
    return index == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : index == 2 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  std::size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(std::size_t /*index*/) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }

  mutable std::atomic<std::uint64_t> fresh_names{0};  // names for unknown dimensions (ort/custom_op_support.h)
};

}  // namespace q3vl
