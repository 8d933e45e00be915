#pragma once
// text.kernels.onnx and vision.kernels.onnx (package/format.h): text.onnx's (vision.onnx's) graph
// with each int4 MatMulNBits and QMoE node (each int8 MatMulNBits) replaced by q3vl's Int4MatMul and
// Int4Experts ops (Int8MatMul; ort/q3vl_ops.h), and its attention by q3vl's GroupQueryAttention on the same inputs, so q3vl's runtime runs them with
// its own kernels while every other runtime reads text.onnx (vision.onnx) unchanged. Both graphs
// name the same weights in text.onnx.data (vision.onnx.data).
#include <cstdint>
#include <filesystem>

#include <onnx/onnx_pb.h>

#include "graph/external_data.h"

namespace q3vl {

// Which weights to hand to q3vl's kernels: int4 (MatMulNBits and QMoE; the decoder) and int8
// (MatMulNBits; the vision encoder, where an image is many tokens and the int8 panels beat ONNX
// Runtime's rates; a decode step is one token, where they do not).
struct KernelWidths {
  bool int4 = true, int8 = false;
};

struct KernelRewrite {
  std::int64_t matmuls = 0;  // MatMulNBits -> Int4MatMul or Int8MatMul
  std::int64_t experts = 0;    // QMoE -> Int4Experts
  std::int64_t attention = 0;  // GroupQueryAttention -> q3vl's (decode steps on its kernel)
  std::int64_t swiglu = 0;     // Split, Sigmoid, Mul, Mul folded into a down projection's Int4MatMul
  std::int64_t gelu = 0;       // FastGelu with a bias folded into an up projection's Int8MatMul (Int4MatMul)
  std::int64_t qkv_attention = 0;  // of those attention nodes, how many also took their q/k norms and rotations
  std::int64_t half_caches = 0;    // of those, how many read and write a half-float cache (all or none)
  std::int64_t patch_attention = 0;  // vision attention (Split, rotations, per-item MultiHeadAttention) -> PatchAttention
  std::int64_t patch_mlp = 0;        // vision MLP (two Int8MatMul, the GELU, the biases) -> PatchMlp
  std::int64_t qkv_splits = 0;       // int8 qkv projections (Int8MatMul, bias Add, Split) -> three Int8MatMul
  std::int64_t total() const { return matmuls + experts + attention + patch_attention; }
};

// Rewrites `model` in place; returns how many nodes it replaced (none: leave no kernel graph).
// Only nodes whose weights the kernels read as they are and of the widths asked for: MatMulNBits
// with 4-bit or 8-bit symmetric weights in whole blocks, float scales, no bias or group index,
// accuracy level 4 (int8 activations); QMoE with 4-bit symmetric experts, fused SwiGLU and no biases.
// Where it replaced any of those, also each float32 GroupQueryAttention without rotary or other
// options by q3vl's (ort/attention_op.h): same inputs and outputs, decode steps on q3vl's kernel;
// each one's preamble (the split of the q/k/v product, the query and key heads' RMS norms and
// rotations) into it as QkvAttention, over half-float KV caches where every layer's attention is
// one (QkvAttentionHalfCache: the graph's past/present tensors become float16); and each gated
// MLP's SwiGLU (Split, Sigmoid, two Mul) into its down projection's Int4MatMul, each FastGelu
// with a bias (the vision MLP's) into the up projection before it, and each vision block's
// attention (the qkv Split, the rotations, the per-item MultiHeadAttention) into one PatchAttention
// and each int8 vision MLP (both projections, the GELU, the biases) into one PatchMlp; the int8
// qkv projection before it becomes three Int8MatMul nodes of one width each (first_row).
KernelRewrite use_q3vl_kernels(onnx::ModelProto& model, KernelWidths widths = {});

// The attention part of use_q3vl_kernels on its own: each such GroupQueryAttention on q3vl's op,
// as QkvAttention where its preamble is the exporter's, over half-float caches where every layer's
// is one (QkvAttentionHalfCache). Counts in `attention`, `qkv_attention` and `half_caches`.
KernelRewrite use_q3vl_attention(onnx::ModelProto& model);

// Gives each Int4MatMul and Int4Experts node of `model` a float16 copy of its scales, appended to
// `out` (text.onnx.data keeps the float32 ones for other runtimes): at block 32 a weight's share of
// bytes read drops from 5 to 4.5 bits, what llama.cpp's Q4_0 reads. The float32 scales are read
// from `dir` (where the model's external data lies). Returns how many tensors it converted.
std::int64_t use_half_scales(onnx::ModelProto& model, const std::filesystem::path& dir, graph::ExternalDataWriter& out);

}  // namespace q3vl
