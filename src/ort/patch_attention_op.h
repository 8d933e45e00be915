#pragma once
// PatchAttention (domain package::kQ3vlOpDomain): a vision block's attention from its q, k and v
// projections on q3vl's kernel (kernels/patch_attention.h), in vision.kernels.onnx in place of the
// query and key rotations and the per-item MultiHeadAttention of vision.onnx.
//
// Inputs: query, key, value [N, num_heads * head_dim] float; cos and sin, N * head_dim floats each
// (any shape, e.g. [N, 1, head_dim]); item_starts, item_ends, item_slices [items] int64 (each
// item's rows and temporal slices: every slice attends only to itself).
// Attributes: num_heads, scale. Output: [N, num_heads * head_dim] float.
#include <atomic>
#include <cstdint>

#include <onnxruntime_cxx_api.h>

#include "kernels/patch_attention.h"

namespace q3vl {

struct PatchAttentionKernel {
  PatchAttentionKernel(const OrtKernelInfo* info, kernels::PatchAttentionScratch* scratch);
  OrtStatusPtr ComputeV2(OrtKernelContext* context);

  std::int64_t num_heads = 0;
  float scale = 0.0f;
  kernels::PatchAttentionScratch& scratch;  // the op's: shared by every node and session
};

struct PatchAttentionOp : Ort::CustomOpBase<PatchAttentionOp, PatchAttentionKernel, /*WithStatus=*/true> {
  PatchAttentionOp();
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const;
  std::size_t GetInputTypeCount() const { return 8; }
  ONNXTensorElementDataType GetInputType(std::size_t index) const {
    return index >= 5 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  std::size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(std::size_t /*index*/) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }

  mutable std::atomic<std::uint64_t> fresh_names{0};  // names for unknown dimensions (ort/custom_op_support.h)
  // The tasks' workspaces, kept from run to run for every PatchAttention node (one op object serves
  // all the sessions it is added to, and outlives them).
  mutable kernels::PatchAttentionScratch scratch;
};

}  // namespace q3vl
