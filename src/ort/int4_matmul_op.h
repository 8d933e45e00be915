#pragma once
// Int4MatMul and Int8MatMul (domain package::kQ3vlOpDomain): a dense block-quantized linear layer on
// q3vl's kernels (kernels/int4_matmul.h, kernels/int8_matmul.h), in place of MatMulNBits with 4-bit
// or 8-bit symmetric weights.
//
// Inputs as MatMulNBits': A [..., K] float, B [N, K/block, block * bits / 8] uint8, scales
// [N * K/block] (any shape of that many values): float or float16 for Int4MatMul, float for
// Int8MatMul; attributes K, N, block_size; output [..., N]. Int4MatMul's optional attribute
// swiglu = 1 takes A [..., 2K], a gated MLP's gate and up projections side by side, and multiplies
// silu(gate) * up (kernels/swiglu.h): the Split, Sigmoid and two Mul nodes before a down projection
// in one op. Optional input 3, bias [N] float, is added to each output row; attribute gelu = 1 then
// applies the tanh GELU (kernels/gelu.h): a vision MLP's up projection, bias and activation in one
// op that writes its output once and allocates nothing the size of it. Int8MatMul's optional
// attribute first_row multiplies rows [first_row, first_row + N) of a B (scales, bias) that holds
// more: a vision block's q, k and v projections, three outputs of one hidden width each from the
// one qkv weight, so that every buffer of the vision pass has that width (ONNX Runtime's arena
// then reuses them whole instead of growing for a three-wide one).
#include <atomic>
#include <cstdint>

#include <onnxruntime_cxx_api.h>

namespace q3vl {

struct QuantMatMulKernel {
  QuantMatMulKernel(const OrtKernelInfo* info, int bits);
  OrtStatusPtr ComputeV2(OrtKernelContext* context);

  int bits = 4;
  std::int64_t K = 0, N = 0, block = 0;
  bool swiglu = false;
  bool gelu = false;
  std::int64_t first_row = 0;
  bool row_range = false;  // first_row given: B, scales and bias may hold more rows than N
};

// One op class per weight width (kBits 4: Int4MatMul, 8: Int8MatMul).
template <int kBits>
struct QuantMatMulOp : Ort::CustomOpBase<QuantMatMulOp<kBits>, QuantMatMulKernel, /*WithStatus=*/true> {
  QuantMatMulOp();
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const;
  std::size_t GetInputTypeCount() const { return 4; }
  ONNXTensorElementDataType GetInputType(std::size_t index) const {
    // Scales: float, or float16 in text.kernels.onnx (any type here; the kernel checks).
    return index == 1 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : index == 2 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(std::size_t index) const {
    return index == 3 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;  // the bias
  }
  std::size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(std::size_t /*index*/) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }

  mutable std::atomic<std::uint64_t> fresh_names{0};  // names for unknown dimensions (ort/custom_op_support.h)
};

using Int4MatMulOp = QuantMatMulOp<4>;
using Int8MatMulOp = QuantMatMulOp<8>;
extern template struct QuantMatMulOp<4>;
extern template struct QuantMatMulOp<8>;

}  // namespace q3vl
