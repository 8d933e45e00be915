#pragma once
// What q3vl's ONNX Runtime ops share: running a kernel's tasks on the session's thread pool, and
// errors turned into ONNX Runtime statuses (an exception must not cross the C API).
#include <exception>

#include <onnxruntime_cxx_api.h>

#include "kernels/int4_matrices.h"

namespace q3vl::ort_ops {

kernels::ParallelFor session_parallel_for(Ort::KernelContext& context);

inline OrtStatusPtr error_status(const std::exception& e) { return Ort::Status(e.what(), ORT_INVALID_ARGUMENT).release(); }

}  // namespace q3vl::ort_ops
