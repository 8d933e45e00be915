#pragma once
// The text side of a package at run time: embedding.onnx (tokens + visual features -> wide
// embeddings) and text.onnx with its KV cache. The cache lives in buffers we own, bound as both
// past and present so GroupQueryAttention appends in place; it grows by doubling up to the
// context length and carries over between calls, so a later turn only processes its new tokens.
#include <cstdint>
#include <span>
#include <vector>

#include "model/config.h"
#include "ort/onnx_session.h"
#include "engine/vision_encoder.h"

namespace q3vl {

class EmbeddingModel {
 public:
  EmbeddingModel(OnnxEnvironment& environment, const std::filesystem::path& model, const ModelConfig& config,
                 const SessionOptions& options = {});
  // [ids.size(), (1+K)H] row-major. `features` may be null (no images); its rows must match the
  // number of image/video pad tokens in `ids`.
  std::vector<float> embed(std::span<const std::int64_t> ids, const VisualFeatures* features);

 private:
  OnnxSession session_;
  ModelConfig config_;
};

struct DecoderOutput {
  std::vector<float> logits;  // [positions, vocab]: the last position, or all with an all-logits export
  std::int64_t positions = 0;
  std::vector<std::vector<float>> hidden_states;  // per layer [S, H], when the model exports them
};

class TextDecoder {
 public:
  // `context_length`: the most tokens the cache may hold (prompt and generated together).
  TextDecoder(OnnxEnvironment& environment, const std::filesystem::path& model, const ModelConfig& config,
              std::int64_t context_length = 4096, const SessionOptions& options = {});

  // Runs `S` new tokens (embeddings [S, (1+K)H], 3-D positions [3, S]) after the cached ones.
  // Throws InvalidInput if they would not fit in the context.
  DecoderOutput forward(std::span<const float> embeddings, std::span<const std::int64_t> positions);

  std::int64_t cached_tokens() const { return cached_; }
  std::int64_t context_length() const { return context_length_; }
  // Forgets every cached token from `tokens` on (a later turn that diverges from the cache).
  void truncate(std::int64_t tokens);
  void reset() { truncate(0); }

 private:
  void reserve(std::int64_t tokens);

  OnnxSession session_;
  ModelConfig config_;
  std::int64_t context_length_;
  bool has_hidden_states_ = false;
  std::int64_t capacity_ = 0;                 // tokens the KV buffers hold
  ONNXTensorElementDataType kv_type_ = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;  // float or float16 (the model's)
  std::size_t kv_element_bytes_ = 4;
  // Per layer: key, value; each [1, kv_heads, capacity, head_dim] of kv_type_.
  std::vector<std::vector<std::uint8_t>> kv_;
  std::int64_t cached_ = 0;
};

}  // namespace q3vl
