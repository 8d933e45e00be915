#pragma once
// What Qwen3-VL's attention does to its fused q/k/v projection before attending: split it into
// query, key and value heads, RMS-normalize each query and key head over the head size (q_norm,
// k_norm) and rotate it (rotate-half rotary embedding, the whole head, with a cos/sin row per token:
// the MRoPE angles the graph computes). The exporter writes this as ten ONNX nodes a layer; q3vl's
// QkvAttention op (ort/attention_op.h) runs it here instead.
#include <cstdint>

#include "kernels/int4_matrices.h"

namespace q3vl::kernels {

struct QkvPreamble {
  std::int64_t heads = 0, kv_heads = 0, head_dim = 0;
  float epsilon = 0.0f;
  const float* q_weight = nullptr;  // [head_dim]
  const float* k_weight = nullptr;  // [head_dim]
  const float* cos = nullptr;       // [table_rows, head_dim / 2]
  const float* sin = nullptr;
  std::int64_t table_rows = 0;
  const std::int64_t* token_rows = nullptr;  // [tokens]: each token's row of cos and sin
};

// qkv [tokens, (heads + 2 kv_heads) * head_dim] -> q [tokens, heads * head_dim] and k, v [tokens,
// kv_heads * head_dim]: q and k normed and rotated, v as it is. Throws InvalidInput for an odd or
// non-positive head size or a token row outside the table.
void run_qkv_preamble(const QkvPreamble& p, const float* qkv, std::int64_t tokens, float* q, float* k, float* v, const ParallelFor& parallel);

}  // namespace q3vl::kernels
