#include "ort/q3vl_ops.h"

#include "ort/attention_op.h"
#include "ort/int4_experts_op.h"
#include "ort/int4_matmul_op.h"
#include "ort/patch_attention_op.h"
#include "ort/patch_mlp_op.h"
#include "package/format.h"

namespace q3vl {

struct Q3vlOps::Ops {
  GroupQueryAttentionOp attention;
  QkvAttentionOp qkv_attention;
  QkvAttentionHalfCacheOp qkv_attention_half_cache;
  Int4ExpertsOp int4_experts;
  Int4MatMulOp int4_matmul;
  Int8MatMulOp int8_matmul;
  PatchAttentionOp patch_attention;
  PatchMlpOp patch_mlp;
  Ort::CustomOpDomain domain{package::kQ3vlOpDomain};
};

Q3vlOps::Q3vlOps() : ops_(std::make_unique<Ops>()) {
  ops_->domain.Add(&ops_->attention);
  ops_->domain.Add(&ops_->qkv_attention);
  ops_->domain.Add(&ops_->qkv_attention_half_cache);
  ops_->domain.Add(&ops_->int4_experts);
  ops_->domain.Add(&ops_->int4_matmul);
  ops_->domain.Add(&ops_->int8_matmul);
  ops_->domain.Add(&ops_->patch_attention);
  ops_->domain.Add(&ops_->patch_mlp);
}
Q3vlOps::~Q3vlOps() = default;

void Q3vlOps::add_to(Ort::SessionOptions& options) const { options.Add(ops_->domain); }

}  // namespace q3vl
