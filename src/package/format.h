#pragma once
// Names shared by the package writer and every runtime that reads a q3vl package: file names,
// graph input/output names (onnxruntime-genai's Qwen3-VL contract), and the wide visual channel.
#include <cstdint>
#include <string>
#include <string_view>

#include "model/config.h"

namespace q3vl {

// The three models of a package, each its own file and manifest "parts" entry.
enum class PackagePart { Vision, Embedding, Text };
PackagePart parse_package_part(const std::string& text);  // "vision", "embedding", "text"
std::string to_string(PackagePart part);

}  // namespace q3vl

namespace q3vl::package {

// q3vl_package.json's "format" and "format_version": a reader refuses a newer version.
inline constexpr const char* kFormat = "q3vl-package";
inline constexpr std::int64_t kFormatVersion = 1;

inline constexpr const char* kVisionModel = "vision.onnx";
inline constexpr const char* kEmbeddingModel = "embedding.onnx";
inline constexpr const char* kTextModel = "text.onnx";
// int4 packages also hold text.kernels.onnx: text.onnx's graph (same data file) with each int4
// MatMulNBits and QMoE node replaced by q3vl's own ops, which only q3vl's runtime registers
// (ort/q3vl_ops.h, kernels/). onnxruntime-genai and other runtimes keep reading text.onnx.
inline constexpr const char* kKernelTextModel = "text.kernels.onnx";
// Its own weights: float16 copies of the int4 scales (the rest it reads from text.onnx.data).
inline constexpr const char* kKernelTextData = "text.kernels.onnx.data";
// Quantized vision encoders at accuracy level 4 also get vision.kernels.onnx: vision.onnx's graph
// (same data file) with each int8 or int4 MatMulNBits on q3vl's ops.
inline constexpr const char* kKernelVisionModel = "vision.kernels.onnx";
inline constexpr const char* kQ3vlOpDomain = "ai.q3vl";
inline constexpr const char* kInt4MatMulOp = "Int4MatMul";
inline constexpr const char* kInt8MatMulOp = "Int8MatMul";
inline constexpr const char* kInt4ExpertsOp = "Int4Experts";
// GroupQueryAttention whose one-token steps run on q3vl's decode attention kernel.
inline constexpr const char* kGroupQueryAttentionOp = "GroupQueryAttention";
// The same with the q/k/v split, the query and key heads' RMS norms and rotary embedding inside.
inline constexpr const char* kQkvAttentionOp = "QkvAttention";
// QkvAttention over a KV cache of IEEE half floats (text.kernels.onnx's, when every layer's
// attention is a QkvAttention).
inline constexpr const char* kQkvAttentionHalfCacheOp = "QkvAttentionHalfCache";
// A vision block's attention from its q, k and v projections: the rotations and the per-item
// attention in one op (vision.kernels.onnx).
inline constexpr const char* kPatchAttentionOp = "PatchAttention";
// A vision block's int8 MLP (up projection, bias, GELU, down projection, bias), a block of rows at a
// time (vision.kernels.onnx).
inline constexpr const char* kPatchMlpOp = "PatchMlp";
inline constexpr const char* kGenaiConfig = "genai_config.json";
inline constexpr const char* kProcessorConfig = "processor_config.json";
inline constexpr const char* kManifest = "q3vl_package.json";

inline constexpr const char* kPixelValues = "pixel_values";
inline constexpr const char* kImageGridThw = "image_grid_thw";
inline constexpr const char* kImageFeatures = "image_features";
inline constexpr const char* kInputIds = "input_ids";
inline constexpr const char* kInputsEmbeds = "inputs_embeds";
inline constexpr const char* kAttentionMask = "attention_mask";
inline constexpr const char* kPositionIds = "position_ids";
inline constexpr const char* kLogits = "logits";

// DeepStack rides along the visual features and token embeddings as extra columns: each row is
// [merged features | DeepStack level 0 | ... | level K-1], each H wide (K = number of levels), so
// stock onnxruntime-genai carries it unchanged from vision to decoder (decoder.hidden_size = this).
inline std::int64_t visual_channel_width(const ModelConfig& config) {
  return config.text.hidden_size * (1 + static_cast<std::int64_t>(config.vision.deepstack_visual_indexes.size()));
}
// The first column of slot `slot` in such a row: slot 0 the merged features (or token embeddings),
// slot k + 1 DeepStack level k. The graphs and the runtime both place columns with this.
inline std::int64_t visual_channel_slot_start(std::int64_t slot, std::int64_t hidden_size) { return slot * hidden_size; }

}  // namespace q3vl::package

namespace q3vl::package {

// Per-layer names, written as onnxruntime-genai's genai_config.json patterns ("%d": the layer).
inline constexpr const char* kPastKeyPattern = "past_key_values.%d.key";
inline constexpr const char* kPastValuePattern = "past_key_values.%d.value";
inline constexpr const char* kPresentKeyPattern = "present.%d.key";
inline constexpr const char* kPresentValuePattern = "present.%d.value";
inline constexpr const char* kHiddenStatePattern = "hidden_states.%d";

inline std::string layer_name(std::string_view pattern, std::int64_t layer) {
  std::string name(pattern);
  return name.replace(name.find("%d"), 2, std::to_string(layer));
}
inline std::string past_key(std::int64_t layer) { return layer_name(kPastKeyPattern, layer); }
inline std::string past_value(std::int64_t layer) { return layer_name(kPastValuePattern, layer); }
inline std::string present_key(std::int64_t layer) { return layer_name(kPresentKeyPattern, layer); }
inline std::string present_value(std::int64_t layer) { return layer_name(kPresentValuePattern, layer); }
inline std::string hidden_state(std::int64_t layer) { return layer_name(kHiddenStatePattern, layer); }

// The model file of each part.
inline const char* part_file(PackagePart part) {
  switch (part) {
    case PackagePart::Vision: return kVisionModel;
    case PackagePart::Embedding: return kEmbeddingModel;
    case PackagePart::Text: return kTextModel;
  }
  return "";
}

}  // namespace q3vl::package
