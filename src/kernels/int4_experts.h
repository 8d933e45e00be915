#pragma once
// q3vl's CPU kernel for a MoE layer's int4 experts (docs: README "MoE"): HF's router (softmax,
// top-k, renormalised) and, for every token, the k chosen SwiGLU experts, reading the block-quantized
// weights where they lie (a memory-mapped package) without unpacking or copying them.
//
// Why our own: ONNX Runtime 1.29's CPU QMoE keeps a repacked float-activation copy of every expert
// (~1 GB per 30B-A3B layer at load, ~36 s for 4 layers) and decodes at a fifth of llama.cpp's speed.
// Here the activations are quantized to int8 in groups of 32 (as MatMulNBits does at accuracy level
// 4) and each group is one integer dot product with the weights' 4-bit values (AVX-512 VNNI or AVX2
// where the CPU has them, portable C++ otherwise).
#include <cstdint>
#include <span>

#include "kernels/int4_matrices.h"

namespace q3vl::kernels {

struct ExpertLayer {
  std::int64_t top_k = 0;
  bool normalize_top_k = true;  // HF's norm_topk_prob: the k weights rescaled to sum to 1
  Int4Matrices gate_up;         // [E, 2I, H]: gate and up rows interleaved (gate_0, up_0, gate_1, ...)
  Int4Matrices down;            // [E, H, I]
};

// Throws InvalidInput when the matrices' shapes disagree with each other or with k.
void check_expert_layer(const ExpertLayer& layer, std::int64_t router_width);

// out[t] = sum over the k experts e chosen for token t of w_e * down_e(silu(gate_e x_t) * up_e x_t),
// for `tokens` rows x [tokens, H] and router logits [tokens, E] (float32).
void run_int4_experts(const ExpertLayer& layer, const float* x, const float* router_logits, std::int64_t tokens,
                      float* out, const ParallelFor& parallel, Int4Isa isa = Int4Isa::Best);

// HF's routing of one token: the k largest softmax probabilities (lower index first on a tie),
// renormalised when asked. Writes k expert ids and weights.
void route_token(std::span<const float> logits, std::int64_t k, bool normalize, std::int32_t* experts, float* weights);

}  // namespace q3vl::kernels
