#include "ort/custom_op_support.h"

#include <stdexcept>
#include <string>

namespace q3vl::ort_ops {

kernels::ParallelFor session_parallel_for(Ort::KernelContext& context) {
  return [&context](std::size_t count, const std::function<void(std::size_t)>& task) {
    if (count == 1) return task(0);
    context.ParallelFor([](void* data, std::size_t i) { (*static_cast<const std::function<void(std::size_t)>*>(data))(i); }, count, 0,
                        const_cast<std::function<void(std::size_t)>*>(&task));
  };
}

void set_scales(kernels::Int4Matrices& matrices, const Ort::ConstValue& scales, const char* op) {
  const ONNXTensorElementDataType type = scales.GetTensorTypeAndShapeInfo().GetElementType();
  matrices.scales = nullptr;
  matrices.half_scales = nullptr;
  if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
    matrices.scales = scales.GetTensorData<float>();
  } else if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
    matrices.half_scales = static_cast<const std::uint16_t*>(scales.GetTensorRawData());
  } else {
    throw std::runtime_error(std::string(op) + ": scales must be float or float16");
  }
}

OrtStatusPtr input_shape(OrtShapeInferContext* context, std::size_t index, std::vector<std::int64_t>& dims,
                         std::vector<const char*>& names) {
  const OrtApi& api = Ort::GetApi();
  OrtTensorTypeAndShapeInfo* info = nullptr;  // the context's own
  if (OrtStatusPtr status = api.ShapeInferContext_GetInputTypeShape(context, index, &info)) return status;
  std::size_t rank = 0;
  if (OrtStatusPtr status = api.GetDimensionsCount(info, &rank)) return status;
  dims.assign(rank, 0);
  names.assign(rank, nullptr);
  if (OrtStatusPtr status = api.GetDimensions(info, dims.data(), rank)) return status;
  return api.GetSymbolicDimensions(info, names.data(), rank);
}

OrtStatusPtr float_output_shaped_as_input0(OrtShapeInferContext* context, const char* op, std::atomic<std::uint64_t>& fresh, std::size_t rank) {
  std::vector<std::int64_t> dims;
  std::vector<const char*> names;
  if (OrtStatusPtr status = input_shape(context, 0, dims, names)) return status;
  if (rank != 0 && dims.size() != rank) {
    return Ort::Status((std::string(op) + ": input 0 must have " + std::to_string(rank) + " dimensions").c_str(), ORT_INVALID_GRAPH).release();
  }
  return set_float_output_shape(context, 0, dims, names, op, fresh);
}

bool quantized_weights_describe(const std::vector<std::int64_t>& b_shape, std::size_t scale_count, std::int64_t rows, std::int64_t cols,
                                std::int64_t block, std::int64_t bits) {
  if (block <= 0 || cols <= 0) return false;
  const std::int64_t blocks = (cols + block - 1) / block;  // MatMulNBits pads each row to whole blocks
  return b_shape == std::vector<std::int64_t>{rows, blocks, block * bits / 8} && scale_count == static_cast<std::size_t>(rows * blocks);
}

OrtStatusPtr set_float_output_shape(OrtShapeInferContext* context, std::size_t index, const std::vector<std::int64_t>& dims,
                                    const std::vector<const char*>& names, const char* op, std::atomic<std::uint64_t>& fresh,
                                    ONNXTensorElementDataType type) {
  const OrtApi& api = Ort::GetApi();
  std::vector<std::string> storage(dims.size());
  std::vector<const char*> named(dims.size());
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const bool nameless = names[i] == nullptr || names[i][0] == '\0';
    if (dims[i] < 0 && nameless) storage[i] = std::string(op) + "_unknown_" + std::to_string(fresh++);
    named[i] = nameless ? storage[i].c_str() : names[i];
  }
  OrtTensorTypeAndShapeInfo* out = nullptr;
  if (OrtStatusPtr status = api.CreateTensorTypeAndShapeInfo(&out)) return status;
  OrtStatusPtr status = api.SetTensorElementType(out, type);
  if (status == nullptr) status = api.SetDimensions(out, dims.data(), dims.size());
  if (status == nullptr) status = api.SetSymbolicDimensions(out, named.data(), named.size());
  if (status == nullptr) status = api.ShapeInferContext_SetOutputTypeShape(context, index, out);
  api.ReleaseTensorTypeAndShapeInfo(out);
  return status;
}

}  // namespace q3vl::ort_ops
