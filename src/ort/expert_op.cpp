#include "ort/expert_op.h"

#include <exception>
#include <string>
#include <vector>

#include "kernels/int4_experts.h"
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
  return {weights.GetTensorData<std::uint8_t>(), scales.GetTensorData<float>(), w[0], w[1], 2 * w[2], block};
}

struct Int4ExpertsKernel {
  Int4ExpertsKernel(const OrtKernelInfo* info) {
    const Ort::ConstKernelInfo kernel_info(info);
    top_k = kernel_info.GetAttribute<std::int64_t>("k");
    normalize = kernel_info.GetAttribute<std::int64_t>("normalize_routing_weights") != 0;
    block = kernel_info.GetAttribute<std::int64_t>("block_size");
  }

  OrtStatusPtr ComputeV2(OrtKernelContext* raw) {
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
      const kernels::ParallelFor parallel = [&context](std::size_t count, const std::function<void(std::size_t)>& task) {
        if (count == 1) return task(0);
        context.ParallelFor([](void* data, std::size_t i) { (*static_cast<const std::function<void(std::size_t)>*>(data))(i); }, count, 0,
                            const_cast<std::function<void(std::size_t)>*>(&task));
      };
      kernels::run_int4_experts(layer, x.GetTensorData<float>(), router.GetTensorData<float>(), tokens, y.GetTensorMutableData<float>(),
                                parallel);
      return nullptr;
    } catch (const std::exception& e) {
      return Ort::Status(e.what(), ORT_INVALID_ARGUMENT).release();
    }
  }

  std::int64_t top_k = 0, block = 0;
  bool normalize = true;
};

struct Int4ExpertsOp : Ort::CustomOpBase<Int4ExpertsOp, Int4ExpertsKernel, /*WithStatus=*/true> {
  // The output has the input's shape, symbolic dimensions included. (The C++ API's ShapeInferContext
  // writes a symbolic dimension as the value -2, which ONNX Runtime then treats as known: the next
  // layer's MatMulNBits fails shape inference and the model does not load.)
  Int4ExpertsOp() {
    OrtCustomOp::InferOutputShapeFn = [](const OrtCustomOp*, OrtShapeInferContext* context) -> OrtStatusPtr {
      const OrtApi& api = Ort::GetApi();
      OrtTensorTypeAndShapeInfo* input = nullptr;  // the context's own
      if (OrtStatusPtr status = api.ShapeInferContext_GetInputTypeShape(context, 0, &input)) return status;
      return api.ShapeInferContext_SetOutputTypeShape(context, 0, input);
    };
  }
  OrtStatusPtr CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
    try {
      *kernel = new Int4ExpertsKernel(info);
      return nullptr;
    } catch (const std::exception& e) {
      return Ort::Status(e.what(), ORT_INVALID_ARGUMENT).release();
    }
  }
  const char* GetName() const { return package::kInt4ExpertsOp; }
  std::size_t GetInputTypeCount() const { return 6; }
  ONNXTensorElementDataType GetInputType(std::size_t index) const {
    return index == 2 || index == 4 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  std::size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(std::size_t /*index*/) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

}  // namespace

struct Q3vlOps::Ops {
  Int4ExpertsOp int4_experts;
  Ort::CustomOpDomain domain{package::kQ3vlOpDomain};
};

Q3vlOps::Q3vlOps() : ops_(std::make_unique<Ops>()) { ops_->domain.Add(&ops_->int4_experts); }
Q3vlOps::~Q3vlOps() = default;

void Q3vlOps::add_to(Ort::SessionOptions& options) const { options.Add(ops_->domain); }

}  // namespace q3vl
