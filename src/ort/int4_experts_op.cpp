#include "ort/int4_experts_op.h"

#include <exception>
#include <string>
#include <vector>

#include "kernels/int4_experts.h"
#include "ort/custom_op_support.h"
#include "package/format.h"

namespace q3vl {
namespace {

kernels::Int4Matrices matrices(const Ort::ConstValue& weights, const Ort::ConstValue& scales, std::int64_t block,
                               const char* name) {
  const std::vector<std::int64_t> w = weights.GetTensorTypeAndShapeInfo().GetShape();
  const std::vector<std::int64_t> s = scales.GetTensorTypeAndShapeInfo().GetShape();
  if (w.size() != 3 || s.size() != 3 || s[0] != w[0] || s[1] != w[1] || block <= 0 || s[2] != (2 * w[2] + block - 1) / block) {
    throw std::runtime_error(std::string("Int4Experts: ") + name + " weights and scales do not describe [E, rows, cols] in blocks of " +
                             std::to_string(block));
  }
  kernels::Int4Matrices m{weights.GetTensorData<std::uint8_t>(), nullptr, w[0], w[1], 2 * w[2], block};
  ort_ops::set_scales(m, scales, "Int4Experts");
  return m;
}

}  // namespace

Int4ExpertsKernel::Int4ExpertsKernel(const OrtKernelInfo* info) {
  const Ort::ConstKernelInfo kernel_info(info);
  top_k = kernel_info.GetAttribute<std::int64_t>("k");
  normalize = kernel_info.GetAttribute<std::int64_t>("normalize_routing_weights") != 0;
  block = kernel_info.GetAttribute<std::int64_t>("block_size");
}

OrtStatusPtr Int4ExpertsKernel::ComputeV2(OrtKernelContext* raw) {
  try {
    Ort::KernelContext context(raw);
    const Ort::ConstValue x = context.GetInput(0);
    const Ort::ConstValue router = context.GetInput(1);
    kernels::ExpertLayer layer;
    layer.top_k = top_k;
    layer.normalize_top_k = normalize;
    layer.gate_up = matrices(context.GetInput(2), context.GetInput(3), block, "gate_up");
    layer.down = matrices(context.GetInput(4), context.GetInput(5), block, "down");
    const std::vector<std::int64_t> x_shape = x.GetTensorTypeAndShapeInfo().GetShape();
    const std::vector<std::int64_t> router_shape = router.GetTensorTypeAndShapeInfo().GetShape();
    if (router_shape.size() != 2) throw std::runtime_error("Int4Experts: router logits must be [tokens, E]");
    kernels::check_expert_layer(layer, router_shape[1]);
    const std::int64_t H = layer.gate_up.cols;
    if (x_shape.empty() || x_shape.back() != H) throw std::runtime_error("Int4Experts: input rows are not " + std::to_string(H) + " wide");
    const std::int64_t tokens = static_cast<std::int64_t>(x.GetTensorTypeAndShapeInfo().GetElementCount()) / H;
    if (tokens != router_shape[0]) throw std::runtime_error("Int4Experts: input and router logits have different token counts");
    Ort::UnownedValue y = context.GetOutput(0, x_shape);
    kernels::run_int4_experts(layer, x.GetTensorData<float>(), router.GetTensorData<float>(), tokens, y.GetTensorMutableData<float>(),
                              ort_ops::session_parallel_for(context));
    return nullptr;
  } catch (const std::exception& e) {
    return ort_ops::error_status(e);
  }
}

// The output has the input's shape, symbolic dimensions included.
Int4ExpertsOp::Int4ExpertsOp() {
  OrtCustomOp::InferOutputShapeFn = [](const OrtCustomOp* op, OrtShapeInferContext* context) -> OrtStatusPtr {
    return ort_ops::float_output_shaped_as_input0(context, package::kInt4ExpertsOp, static_cast<const Int4ExpertsOp*>(op)->fresh_names);
  };
}

OrtStatusPtr Int4ExpertsOp::CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
  return ort_ops::create_kernel<Int4ExpertsKernel>(info, kernel);
}

const char* Int4ExpertsOp::GetName() const { return package::kInt4ExpertsOp; }

}  // namespace q3vl
