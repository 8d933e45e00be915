#pragma once
// The pieces of text.onnx's decoder, one function or functor per block kind: RMSNorm, attention
// (q/k norm, interleaved MRoPE, GroupQueryAttention over the BNSH KV cache), the dense SwiGLU MLP,
// the residual layer that composes an attention and an MLP block, and the DeepStack add.
//
// The seam for other architectures is DecoderBlocks: decoder_layer only knows the two signatures
// below, so another MLP kind (e.g. Qwen3-VL-MoE's sparse experts) or attention kind is one more
// function or functor that make_decoder_blocks returns for its config; nothing else changes.
#include <cstdint>
#include <functional>
#include <string>

#include "export/weights.h"
#include "graph/graph_builder.h"
#include "model/config.h"

namespace q3vl::decoder {

// The symbolic dims of text.onnx's inputs and outputs (the runtime and genai bind by them).
struct DecoderDims {
  graph::Dim batch = std::string("batch_size");
  graph::Dim sequence = std::string("sequence_length");
  graph::Dim total = std::string("total_sequence_length");
  graph::Dim past = std::string("past_sequence_length");
  graph::Dim present = std::string("present_sequence_length");  // max_length with shared buffers
};

// What the blocks of one decoder layer build with. Activations and float weights are in
// weights.float_type() (the compute type; the KV cache has it too).
struct LayerContext {
  graph::GraphBuilder& g;
  WeightWriter& weights;
  const TextConfig& config;
  const LinearOptions& linear;  // attention and MLP projections
  std::int64_t layer;

  std::string weight(const std::string& leaf) const;  // this layer's checkpoint tensor
  std::string hint(const std::string& what) const;    // node name "layer{l}_{what}"
};

// Interleaved MRoPE as ONNX Runtime's RotaryEmbedding sees it: every token gets its own row of
// the cos/sin caches ([B*S, head_dim/2], computed once per forward from position_ids [3, B, S]),
// and position_ids [B, S] just number the tokens, so one fused kernel rotates each of q and k.
struct RotaryTables {
  std::string cos;
  std::string sin;
  std::string token_rows;  // [B, S] = 0 .. B*S-1
};

// Computed once per forward from the graph inputs and shared by every layer's attention.
struct AttentionInputs {
  std::string seqlens_k;     // [B] int32: attended tokens per sequence - 1 (GQA's bookkeeping)
  std::string total_length;  // int32 scalar: the attention mask's length
  RotaryTables rotary;
};

// From attention_mask [B, total] and position_ids [3, B, S]; rotary tables in `type`.
AttentionInputs attention_inputs(graph::GraphBuilder& g, const TextConfig& t, const std::string& mask,
                                 const std::string& positions, graph::ElemType type);

// An attention kind: the layer's normed input [B, S, H] -> its output projection [B, S, H]
// (before the residual add). It declares the layer's KV cache inputs and outputs itself.
using AttentionBlock = std::function<std::string(const LayerContext&, const AttentionInputs&, const std::string& normed)>;
// An MLP kind: the post-attention-normed input [B, S, H] -> [B, S, H] (before the residual add).
using MlpBlock = std::function<std::string(const LayerContext&, const std::string& normed)>;

struct DecoderBlocks {
  AttentionBlock attention;
  MlpBlock mlp;
};

// The block kinds this config's layers use (dense Qwen3-VL: GqaAttention and swiglu_mlp), built
// once per graph (a kind may add constants all layers share). A per-layer choice (MoE's
// mlp_only_layers) belongs inside the block, which sees LayerContext::layer.
// `router_outputs`: MoE layers also output their router logits (tests; see export/moe_mlp.h).
DecoderBlocks make_decoder_blocks(graph::GraphBuilder& g, const TextConfig& t, bool router_outputs = false);

// Qwen3 attention: q, k, v in one matmul; RMSNorm of q and k per head, MRoPE, then
// GroupQueryAttention with the past/present KV cache of the layer; o_proj.
class GqaAttention {
 public:
  GqaAttention(graph::GraphBuilder& g, const TextConfig& t);  // the reshape shapes all layers share
  std::string operator()(const LayerContext& layer, const AttentionInputs& inputs, const std::string& normed) const;

 private:
  std::string q_shape_;     // [0, 0, heads, head_dim]
  std::string k_shape_;     // [0, 0, kv_heads, head_dim]
  std::string flat_shape_;  // [0, 0, -1]
};

// Dense SwiGLU MLP: down(silu(gate(x)) * up(x)), gate and up in one matmul.
std::string swiglu_mlp(const LayerContext& layer, const std::string& normed);

// RMSNorm over the last axis (float32 statistics).
std::string rms_norm(graph::GraphBuilder& g, WeightWriter& weights, const std::string& x, const std::string& weight,
                     double eps);

// One pre-norm residual decoder layer: x + attention(norm(x)), then + mlp(norm(...)).
std::string decoder_layer(const LayerContext& layer, const DecoderBlocks& blocks, const AttentionInputs& inputs,
                          const std::string& x);

// Slot `slot` [slot*H, (slot+1)*H) of the wide inputs_embeds channel [B, S, (1+K)H] (docs/model-math.md §5.3):
// slot 0 holds the token embeddings, slot l+1 DeepStack level l (zeros on text rows).
std::string wide_channel_slot(graph::GraphBuilder& g, const std::string& embeds, std::int64_t slot, std::int64_t H);

// x + DeepStack level `level` (taken from the wide channel, converted to `type`).
std::string add_deepstack(graph::GraphBuilder& g, const std::string& x, const std::string& embeds, std::int64_t level,
                          std::int64_t H, graph::ElemType type);

}  // namespace q3vl::decoder
