#include "ort/custom_op_support.h"

namespace q3vl::ort_ops {

kernels::ParallelFor session_parallel_for(Ort::KernelContext& context) {
  return [&context](std::size_t count, const std::function<void(std::size_t)>& task) {
    if (count == 1) return task(0);
    context.ParallelFor([](void* data, std::size_t i) { (*static_cast<const std::function<void(std::size_t)>*>(data))(i); }, count, 0,
                        const_cast<std::function<void(std::size_t)>*>(&task));
  };
}

}  // namespace q3vl::ort_ops
