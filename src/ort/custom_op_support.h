#pragma once
// What q3vl's ONNX Runtime ops share: running a kernel's tasks on the session's thread pool, errors
// turned into ONNX Runtime statuses (an exception must not cross the C API), shape inference through
// the C API, and reading a scales input of either float type.
#include <atomic>
#include <cstdint>
#include <exception>
#include <vector>

#include <onnxruntime_cxx_api.h>

#include "kernels/int4_matrices.h"

namespace q3vl::ort_ops {

kernels::ParallelFor session_parallel_for(Ort::KernelContext& context);

inline OrtStatusPtr error_status(const std::exception& e) { return Ort::Status(e.what(), ORT_INVALID_ARGUMENT).release(); }

// A float output's shape for ONNX Runtime's shape inference, through the C API (the C++
// ShapeInferContext writes a symbolic dimension as the value -2). `dims` holds -1 for a dimension
// not known; `names` its symbolic name or "". The C API turns a nameless unknown dimension into the
// value -1, which later shape inference takes as known (and asserts on): those get a fresh name,
// `op` and a number from `fresh` (the op's own counter: names never repeat within one op type, and
// the op type keeps two ops' names apart, so no two unrelated dimensions are declared equal).
OrtStatusPtr set_float_output_shape(OrtShapeInferContext* context, std::size_t index, const std::vector<std::int64_t>& dims,
                                    const std::vector<const char*>& names, const char* op, std::atomic<std::uint64_t>& fresh,
                                    ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);

// Shape inference for an op whose output 0 is a float tensor of input 0's shape (symbolic
// dimensions included); `rank`, unless 0, is the rank input 0 must have (an error naming `op` if not).
OrtStatusPtr float_output_shaped_as_input0(OrtShapeInferContext* context, const char* op, std::atomic<std::uint64_t>& fresh, std::size_t rank = 0);

// Whether B [rows, blocks, block * bits / 8] and `scale_count` scales describe a MatMulNBits-layout
// matrix [rows, cols] in blocks of `block` (blocks = cols / block rounded up: rows padded to whole
// blocks; the int4 kernels take whole blocks only, kernels/int4_matmul.h).
bool quantized_weights_describe(const std::vector<std::int64_t>& b_shape, std::size_t scale_count, std::int64_t rows, std::int64_t cols,
                                std::int64_t block, std::int64_t bits);

// A custom op's CreateKernelV2: constructs Kernel(info, more...), or returns the error.
template <typename Kernel, typename... More>
OrtStatusPtr create_kernel(const OrtKernelInfo* info, void** kernel, More... more) {
  try {
    *kernel = new Kernel(info, more...);
    return nullptr;
  } catch (const std::exception& e) {
    return error_status(e);
  }
}

// Points `matrices` at a scales tensor: float32 (`scales`) or float16 (`half_scales`); throws
// naming `op` for any other type.
void set_scales(kernels::Int4Matrices& matrices, const Ort::ConstValue& scales, const char* op);

// Input `index`'s dimensions (-1 where unknown) and symbolic names.
OrtStatusPtr input_shape(OrtShapeInferContext* context, std::size_t index, std::vector<std::int64_t>& dims,
                         std::vector<const char*>& names);

}  // namespace q3vl::ort_ops
