#pragma once
// The pieces of vision.onnx's ViT, one function per block kind: LayerNorm, attention (2-D rotary,
// MultiHeadAttention within attention segments: on views of q, k, v when a call holds one item,
// one item per Loop iteration otherwise), the GELU MLP, the pre-norm residual block that composes
// them, and the 2x2 patch merger.
//
// As in the decoder (export/decoder_blocks.h), vision_block only knows the two block signatures
// in VisionBlocks, so another attention or MLP kind is one more function make_vision_blocks
// returns for its config.
#include <cstdint>
#include <functional>
#include <string>

#include "export/weights.h"
#include "graph/graph_builder.h"
#include "model/config.h"

namespace q3vl::vision {

// What the pieces of one ViT block build with; activations and float weights are in
// weights.float_type().
struct BlockContext {
  graph::GraphBuilder& g;
  WeightWriter& weights;
  const VisionConfig& config;
  const LinearOptions& linear;
  std::int64_t block;

  std::string weight(const std::string& leaf) const;  // this block's checkpoint tensor
  std::string hint(const std::string& what) const;    // node name "block{i}_{what}"
};

// Computed once per forward from image_grid_thw and shared by every block's attention.
struct AttentionInputs {
  std::string cos;             // [N, 1, hd] rotary tables, broadcast over heads
  std::string sin;
  // Attention segments: every temporal slice of every item (image or video) attends only to
  // itself. Per item [n] int64: first row, one past the last row, temporal slices; and the item
  // count as a scalar.
  std::string item_starts;
  std::string item_ends;
  std::string item_frames;
  std::string item_count;
};

// An attention kind: normed patches [N, D] -> the output projection [N, D] (before the residual add).
using AttentionBlock = std::function<std::string(const BlockContext&, const AttentionInputs&, const std::string& normed)>;
// An MLP kind: normed patches [N, D] -> [N, D] (before the residual add).
using MlpBlock = std::function<std::string(const BlockContext&, const std::string& normed)>;

struct VisionBlocks {
  AttentionBlock attention;
  MlpBlock mlp;
};

// The block kinds of this config's ViT (Qwen3-VL: vision_attention and gelu_mlp).
VisionBlocks make_vision_blocks(const VisionConfig& v);

// qkv in one matmul, 2-D rotary on q and k, MultiHeadAttention within each segment, proj.
std::string vision_attention(const BlockContext& block, const AttentionInputs& inputs, const std::string& normed);

// fc2(gelu_tanh(fc1(x))).
std::string gelu_mlp(const BlockContext& block, const std::string& normed);

// LayerNorm over the last axis with the checkpoint's `prefix`weight and `prefix`bias.
std::string layer_norm(graph::GraphBuilder& g, WeightWriter& weights, const std::string& x, const std::string& prefix);

// One pre-norm residual ViT block: x + attention(norm1(x)), then + mlp(norm2(...)).
std::string vision_block(const BlockContext& block, const VisionBlocks& blocks, const AttentionInputs& inputs,
                         const std::string& x);

// A patch merger's checkpoint tensors and layout. The final merger normalizes each patch before
// the 2x2 concat; the DeepStack mergers normalize after it.
struct PatchMerger {
  std::string weight_prefix;  // e.g. "model.visual.merger."
  bool norm_after_concat;
  std::string hint;  // node name prefix
};
PatchMerger final_merger();
PatchMerger deepstack_merger(std::int64_t level);

// 2x2 blocks of consecutive rows -> one row of 4D -> fc1, erf GELU, fc2 (docs/model-math.md §4.6).
std::string patch_merger(graph::GraphBuilder& g, WeightWriter& weights, const VisionConfig& v, const LinearOptions& linear,
                         const std::string& x, const PatchMerger& merger);

}  // namespace q3vl::vision
