#pragma once
// Int4Experts (domain package::kQ3vlOpDomain): a MoE layer's int4 experts on q3vl's kernel
// (kernels/int4_experts.h), in place of QMoE.
//
// Inputs: x [..., H] float, router logits [tokens, E] float, gate_up weights [E, 2I, H/2] uint8 and
// scales [E, 2I, ceil(H/block)], down weights [E, H, I/2] uint8 and scales [E, H, ceil(I/block)]
// (scales float or float16); attributes k, normalize_routing_weights, block_size; output like x.
#include <atomic>
#include <cstdint>

#include <onnxruntime_cxx_api.h>

namespace q3vl {

struct Int4ExpertsKernel {
  explicit Int4ExpertsKernel(const OrtKernelInfo* info);
  OrtStatusPtr ComputeV2(OrtKernelContext* context);

  std::int64_t top_k = 0, block = 0;
  bool normalize = true;
};

struct Int4ExpertsOp : Ort::CustomOpBase<Int4ExpertsOp, Int4ExpertsKernel, /*WithStatus=*/true> {
  Int4ExpertsOp();
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const;
  std::size_t GetInputTypeCount() const { return 6; }
  ONNXTensorElementDataType GetInputType(std::size_t index) const {
    // Scales (3, 5): float, or float16 in text.kernels.onnx (any type here; the kernel checks).
    return index == 2 || index == 4   ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8
           : index == 3 || index == 5 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED
                                      : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  std::size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(std::size_t /*index*/) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }

  mutable std::atomic<std::uint64_t> fresh_names{0};  // names for unknown dimensions (ort/custom_op_support.h)
};

}  // namespace q3vl
