#pragma once
// q3vl's own ONNX Runtime ops, in the domain package::kQ3vlOpDomain: today one, Int4Experts (a MoE
// layer's int4 experts, kernels/int4_experts.h), which text.experts.onnx uses in place of QMoE.
//
// Int4Experts: inputs x [..., H] float, router logits [tokens, E] float, gate_up weights
// [E, 2I, H/2] uint8 and scales [E, 2I, ceil(H/block)] float, down weights [E, H, I/2] uint8 and
// scales [E, H, ceil(I/block)] float; attributes k, normalize_routing_weights, block_size; output
// like x.
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
