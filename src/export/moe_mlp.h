#pragma once
// Qwen3-VL MoE's MLP kind (docs/model-math.md §13): each sparse layer routes every token to k of
// E SwiGLU experts through ONNX Runtime's contrib op com.microsoft.MoE (fp32/fp16 experts) or
// com.microsoft.QMoE (int8/int4 experts, symmetric blocks as MatMulNBits'); the router stays float.
// The other layers (mlp_only_layers, decoder_sparse_step) keep the dense SwiGLU MLP.
//
// Why the MoE op: its CPU kernel computes exactly HF's router (softmax of the router logits in
// float32, top-k, renormalised when normalize_routing_weights = 1) and runs only the selected
// experts, where a graph of standard ops would either multiply by every expert (E/k times the
// work) or gather expert weights per token.
#include <cstdint>
#include <string>

#include "export/decoder_blocks.h"

namespace q3vl::decoder {

// The test-only output with a sparse layer's router logits [B*S, E] (float32).
std::string router_logits_output(std::int64_t layer);

class MoeMlp {
 public:
  // `router_outputs`: also output each sparse layer's router logits (router_logits_output).
  MoeMlp(graph::GraphBuilder& g, const TextConfig& t, bool router_outputs);
  std::string operator()(const LayerContext& layer, const std::string& normed) const;

 private:
  std::string sparse(const LayerContext& layer, const std::string& normed) const;

  std::string router_rows_shape_;  // [-1, E]: the MoE op takes the router logits as [tokens, E]
  bool router_outputs_;
};

}  // namespace q3vl::decoder
