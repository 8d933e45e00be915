#pragma once
// q3vl's own ONNX Runtime ops, in the domain package::kQ3vlOpDomain, which text.kernels.onnx uses
// in place of ONNX Runtime's int4 ops (package/format.h): Int4MatMul for MatMulNBits
// (ort/int4_matmul_op.h), Int4Experts for QMoE (ort/int4_experts_op.h) and GroupQueryAttention for
// ONNX Runtime's, whose decode steps run on q3vl's kernel (ort/attention_op.h); and in
// vision.kernels.onnx, Int8MatMul, PatchAttention (ort/patch_attention_op.h) and PatchMlp
// (ort/patch_mlp_op.h).
#include <memory>

#include <onnxruntime_cxx_api.h>

namespace q3vl {

class Q3vlOps {
 public:
  Q3vlOps();
  ~Q3vlOps();
  Q3vlOps(const Q3vlOps&) = delete;
  Q3vlOps& operator=(const Q3vlOps&) = delete;
  // Must outlive every session it is added to.
  void add_to(Ort::SessionOptions& options) const;

 private:
  struct Ops;
  std::unique_ptr<Ops> ops_;
};

}  // namespace q3vl
