#include "ort/patch_attention_op.h"

#include <exception>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/patch_attention.h"
#include "ort/custom_op_support.h"
#include "package/format.h"
#include "util/shape.h"

namespace q3vl {

PatchAttentionKernel::PatchAttentionKernel(const OrtKernelInfo* info, kernels::PatchAttentionScratch* workspaces) : scratch(*workspaces) {
  const Ort::ConstKernelInfo kernel_info(info);
  num_heads = kernel_info.GetAttribute<std::int64_t>("num_heads");
  scale = kernel_info.GetAttribute<float>("scale");
  if (num_heads <= 0 || !(scale > 0.0f)) {
    throw std::runtime_error(std::string(package::kPatchAttentionOp) + ": num_heads " + std::to_string(num_heads) + " and scale " +
                             std::to_string(scale) + " must be positive");
  }
}

OrtStatusPtr PatchAttentionKernel::ComputeV2(OrtKernelContext* raw) {
  try {
    Ort::KernelContext context(raw);
    const char* op = package::kPatchAttentionOp;
    const Ort::ConstValue query = context.GetInput(0);
    const std::vector<std::int64_t> shape = query.GetTensorTypeAndShapeInfo().GetShape();
    if (shape.size() != 2 || shape[1] % num_heads != 0) {
      throw std::runtime_error(std::string(op) + ": query " + shape_string(shape) + " is not [N, " + std::to_string(num_heads) + " heads * head size]");
    }
    const std::int64_t rows = shape[0], head_dim = shape[1] / num_heads;
    const auto rows_of = [&](std::size_t index, const char* what) {
      const Ort::ConstValue v = context.GetInput(index);
      if (v.GetTensorTypeAndShapeInfo().GetShape() != shape) {
        throw std::runtime_error(std::string(op) + ": " + what + " " + shape_string(v.GetTensorTypeAndShapeInfo().GetShape()) + " is not the query's " +
                                 shape_string(shape));
      }
      return v.GetTensorData<float>();
    };
    const auto floats = [&](std::size_t index, const char* what) {
      const Ort::ConstValue v = context.GetInput(index);
      const std::size_t count = v.GetTensorTypeAndShapeInfo().GetElementCount();
      if (count != static_cast<std::size_t>(rows * head_dim)) {
        throw std::runtime_error(std::string(op) + ": " + what + " holds " + std::to_string(count) + " values, not " + std::to_string(rows) +
                                 " rows of " + std::to_string(head_dim));
      }
      return v.GetTensorData<float>();
    };
    const auto int64s = [&](std::size_t index) {
      const Ort::ConstValue v = context.GetInput(index);
      return std::span<const std::int64_t>(v.GetTensorData<std::int64_t>(), v.GetTensorTypeAndShapeInfo().GetElementCount());
    };
    const std::vector<kernels::AttentionSegment> segments = kernels::item_segments(int64s(5), int64s(6), int64s(7), rows);
    Ort::UnownedValue out = context.GetOutput(0, std::vector<std::int64_t>{rows, num_heads * head_dim});
    kernels::PatchAttention call;
    call.rows = rows;
    call.num_heads = num_heads;
    call.head_dim = head_dim;
    call.scale = scale;
    call.query = query.GetTensorData<float>();
    call.key = rows_of(1, "key");
    call.value = rows_of(2, "value");
    call.stride = num_heads * head_dim;
    call.cos = floats(3, "cos");
    call.sin = floats(4, "sin");
    call.segments = segments;
    call.out = out.GetTensorMutableData<float>();
    kernels::run_patch_attention(call, ort_ops::session_parallel_for(context), scratch);
    return nullptr;
  } catch (const std::exception& e) {
    return ort_ops::error_status(e);
  }
}

// The output's shape: the query's.
PatchAttentionOp::PatchAttentionOp() {
  OrtCustomOp::InferOutputShapeFn = [](const OrtCustomOp* op, OrtShapeInferContext* context) -> OrtStatusPtr {
    return ort_ops::float_output_shaped_as_input0(context, package::kPatchAttentionOp, static_cast<const PatchAttentionOp*>(op)->fresh_names, 2);
  };
}

OrtStatusPtr PatchAttentionOp::CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
  return ort_ops::create_kernel<PatchAttentionKernel>(info, kernel, &scratch);
}

const char* PatchAttentionOp::GetName() const { return package::kPatchAttentionOp; }

}  // namespace q3vl
