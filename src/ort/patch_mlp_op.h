#pragma once
// PatchMlp (domain package::kQ3vlOpDomain): a vision block's MLP on q3vl's kernel
// (kernels/patch_mlp.h), in vision.kernels.onnx in place of the up projection's Int8MatMul (bias and
// GELU folded in), the down projection's Int8MatMul and its bias Add: 256 patch rows at a time, so
// the hidden activations are never held for a whole image.
//
// Inputs: x [..., K] float; up B [N, K/block, block] uint8, up scales [N * K/block] float, up bias
// [N] float; down B [K, N/block, block] uint8, down scales [K * N/block] float, down bias [K] float
// (optional). Attributes: K, N, block_size. Output: [..., K] float.
#include <atomic>
#include <cstdint>

#include <onnxruntime_cxx_api.h>

#include "kernels/patch_mlp.h"

namespace q3vl {

struct PatchMlpKernel {
  PatchMlpKernel(const OrtKernelInfo* info, kernels::PatchMlpScratch* scratch);
  OrtStatusPtr ComputeV2(OrtKernelContext* context);

  std::int64_t K = 0, N = 0, block = 0;
  kernels::PatchMlpScratch& scratch;  // the op's: shared by every node and session
};

struct PatchMlpOp : Ort::CustomOpBase<PatchMlpOp, PatchMlpKernel, /*WithStatus=*/true> {
  PatchMlpOp();
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const;
  std::size_t GetInputTypeCount() const { return 7; }
  ONNXTensorElementDataType GetInputType(std::size_t index) const {
    return index == 1 || index == 4 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(std::size_t index) const {
    return index == 6 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;  // the down projection's bias
  }
  std::size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(std::size_t /*index*/) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }

  mutable std::atomic<std::uint64_t> fresh_names{0};  // names for unknown dimensions (ort/custom_op_support.h)
  mutable kernels::PatchMlpScratch scratch;           // every node's hidden blocks, kept from run to run
};

}  // namespace q3vl
