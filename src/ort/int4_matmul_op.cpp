#include "ort/int4_matmul_op.h"

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/int4_matmul.h"
#include "kernels/gelu.h"
#include "kernels/int8_matmul.h"
#include "kernels/swiglu.h"
#include "ort/custom_op_support.h"
#include "package/format.h"
#include "util/shape.h"

namespace q3vl {
namespace {

const char* op_name(int bits) { return bits == 8 ? package::kInt8MatMulOp : package::kInt4MatMulOp; }

}  // namespace

QuantMatMulKernel::QuantMatMulKernel(const OrtKernelInfo* info, int weight_bits) : bits(weight_bits) {
  const Ort::ConstKernelInfo kernel_info(info);
  K = kernel_info.GetAttribute<std::int64_t>("K");
  N = kernel_info.GetAttribute<std::int64_t>("N");
  block = kernel_info.GetAttribute<std::int64_t>("block_size");
  std::int64_t swiglu_attribute = 0;
  const Ort::Status found(Ort::GetApi().KernelInfoGetAttribute_int64(info, "swiglu", &swiglu_attribute));
  if (!found.IsOK()) swiglu_attribute = 0;  // absent: A is what the weights multiply
  if (swiglu_attribute != 0 && (bits != 4 || swiglu_attribute != 1)) {
    throw std::runtime_error(std::string(op_name(bits)) + ": swiglu = " + std::to_string(swiglu_attribute) + " (only Int4MatMul takes it, as 0 or 1)");
  }
  swiglu = swiglu_attribute == 1;
  std::int64_t gelu_attribute = 0;
  const Ort::Status has_gelu(Ort::GetApi().KernelInfoGetAttribute_int64(info, "gelu", &gelu_attribute));
  if (!has_gelu.IsOK()) gelu_attribute = 0;
  if (gelu_attribute != 0 && (gelu_attribute != 1 || swiglu)) {
    throw std::runtime_error(std::string(op_name(bits)) + ": gelu = " + std::to_string(gelu_attribute) + " (0 or 1, and not with swiglu)");
  }
  gelu = gelu_attribute == 1;
  const Ort::Status has_first_row(Ort::GetApi().KernelInfoGetAttribute_int64(info, "first_row", &first_row));
  row_range = has_first_row.IsOK();
  if (!row_range) first_row = 0;
  if (first_row < 0 || (first_row != 0 && (bits != 8 || gelu))) {
    throw std::runtime_error(std::string(op_name(bits)) + ": first_row = " + std::to_string(first_row) + " (only Int8MatMul takes it, without gelu)");
  }
}

OrtStatusPtr QuantMatMulKernel::ComputeV2(OrtKernelContext* raw) {
  try {
    Ort::KernelContext context(raw);
    const Ort::ConstValue a = context.GetInput(0);
    const Ort::ConstValue b = context.GetInput(1);
    const Ort::ConstValue scales = context.GetInput(2);
    const char* op = op_name(bits);  // for errors
    const std::vector<std::int64_t> b_shape = b.GetTensorTypeAndShapeInfo().GetShape();
    // Rows [first_row, first_row + N) of B, its scales and its bias; all of them without first_row.
    const std::int64_t b_rows = row_range && !b_shape.empty() ? b_shape[0] : N;
    kernels::Int4Matrices int4{b.GetTensorData<std::uint8_t>(), nullptr, 1, N, K, block};
    kernels::Int8Matrix int8{b.GetTensorData<std::uint8_t>(), nullptr, N, K, block};
    int8.values += first_row * int8.row_bytes();
    if (bits == 4) {
      ort_ops::set_scales(int4, scales, op);
      kernels::check_int4_matmul(int4);
    } else {
      if (scales.GetTensorTypeAndShapeInfo().GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
        throw std::runtime_error(std::string(op) + ": scales must be float");
      }
      if (block <= 0) throw std::runtime_error(std::string(op) + ": block_size " + std::to_string(block));
      int8.scales = scales.GetTensorData<float>() + first_row * int8.blocks();
      kernels::check_int8_matmul(int8);
    }
    if (!ort_ops::quantized_weights_describe(b_shape, scales.GetTensorTypeAndShapeInfo().GetElementCount(), b_rows, K, block, bits) ||
        b_rows < first_row + N) {
      throw std::runtime_error(std::string(op) + ": B " + shape_string(b_shape) + " and " + std::to_string(scales.GetTensorTypeAndShapeInfo().GetElementCount()) +
                               " scales do not describe [N=" + std::to_string(N) + ", K=" + std::to_string(K) + "] in blocks of " +
                               std::to_string(block) + (row_range ? " from row " + std::to_string(first_row) : std::string()));
    }
    // Checked before the matmul: a bad bias fails fast.
    const float* bias = nullptr;
    if (context.GetInputCount() > 3) {
      const Ort::ConstValue bias_value = context.GetInput(3);
      if (static_cast<const OrtValue*>(bias_value) != nullptr) {
        const auto info = bias_value.GetTensorTypeAndShapeInfo();
        if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || info.GetElementCount() != static_cast<std::size_t>(b_rows)) {
          throw std::runtime_error(std::string(op) + ": bias must be " + std::to_string(b_rows) + " floats, one per row of B");
        }
        bias = bias_value.GetTensorData<float>() + first_row;
      }
    }
    std::vector<std::int64_t> shape = a.GetTensorTypeAndShapeInfo().GetShape();
    const std::int64_t width = swiglu ? 2 * K : K;  // A's last dimension
    if (shape.empty() || shape.back() != width) {
      throw std::runtime_error(std::string(op) + ": A " + shape_string(shape) + " does not end in " + (swiglu ? "2K=" : "K=") + std::to_string(width));
    }
    const std::int64_t tokens = static_cast<std::int64_t>(a.GetTensorTypeAndShapeInfo().GetElementCount()) / width;
    shape.back() = N;
    Ort::UnownedValue y = context.GetOutput(0, shape);
    const kernels::ParallelFor parallel = ort_ops::session_parallel_for(context);
    if (swiglu) {
      std::vector<float> activated(static_cast<std::size_t>(tokens * K));
      constexpr std::int64_t kRowsPerTask = 16;
      parallel(static_cast<std::size_t>((tokens + kRowsPerTask - 1) / kRowsPerTask), [&](std::size_t task) {
        const std::int64_t first = static_cast<std::int64_t>(task) * kRowsPerTask;
        kernels::swiglu_rows(a.GetTensorData<float>() + first * width, std::min(kRowsPerTask, tokens - first), K, kernels::GateUpLayout::Halves,
                             activated.data() + first * K);
      });
      kernels::run_int4_matmul(int4, activated.data(), tokens, y.GetTensorMutableData<float>(), parallel);
    } else if (bits == 4) {
      kernels::run_int4_matmul(int4, a.GetTensorData<float>(), tokens, y.GetTensorMutableData<float>(), parallel);
    } else {
      kernels::run_int8_matmul(int8, a.GetTensorData<float>(), tokens, y.GetTensorMutableData<float>(), parallel);
    }
    // Bias and activation in place over the output: no second buffer of its size.
    kernels::bias_activation_rows(y.GetTensorMutableData<float>(), tokens, N, bias, gelu, parallel);
    return nullptr;
  } catch (const std::exception& e) {
    return ort_ops::error_status(e);
  }
}

// The output's shape: A's, symbolic dimensions included, with the last one N (B's first).
template <int kBits>
QuantMatMulOp<kBits>::QuantMatMulOp() {
  OrtCustomOp::InferOutputShapeFn = [](const OrtCustomOp* op, OrtShapeInferContext* context) -> OrtStatusPtr {
    std::vector<std::int64_t> dims, b_dims;
    std::vector<const char*> names, b_names;
    if (OrtStatusPtr status = ort_ops::input_shape(context, 0, dims, names)) return status;
    if (OrtStatusPtr status = ort_ops::input_shape(context, 1, b_dims, b_names)) return status;
    if (dims.empty() || b_dims.size() != 3) {
      return Ort::Status((std::string(op_name(kBits)) + ": A must have a last dimension and B three").c_str(), ORT_INVALID_GRAPH).release();
    }
    dims.back() = b_dims[0];
    names.back() = b_names[0];
    return ort_ops::set_float_output_shape(context, 0, dims, names, op_name(kBits), static_cast<const QuantMatMulOp*>(op)->fresh_names);
  };
}

template <int kBits>
OrtStatusPtr QuantMatMulOp<kBits>::CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
  return ort_ops::create_kernel<QuantMatMulKernel>(info, kernel, kBits);
}

template <int kBits>
const char* QuantMatMulOp<kBits>::GetName() const {
  return op_name(kBits);
}

template struct QuantMatMulOp<4>;
template struct QuantMatMulOp<8>;

}  // namespace q3vl
