#pragma once
// The text side of a package at run time: embedding.onnx (tokens + visual features -> wide
// embeddings) and text.onnx. The models are shared and stateless (one per package, used from any
// thread); each sequence brings its own KvCache. The cache lives in buffers the sequence owns,
// bound as both past and present so GroupQueryAttention appends in place; it grows by doubling up
// to the context length and carries over between calls, so a later turn only processes its new tokens.
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
  // Thread-safe.
  std::vector<float> embed(std::span<const std::int64_t> ids, const VisualFeatures* features) const;

  const OnnxSession& session() const { return session_; }

 private:
  OnnxSession session_;
  ModelConfig config_;
};

struct DecoderOutput {
  std::vector<float> logits;  // [positions, vocab]: the last position, or all with an all-logits export
  std::int64_t positions = 0;
  std::vector<std::vector<float>> hidden_states;  // per layer [S, H], when the model exports them
};

// One sequence's keys and values for every layer: the per-sequence half of the decoder.
class KvCache {
 public:
  std::int64_t cached_tokens() const { return cached_; }
  std::int64_t context_length() const { return context_length_; }
  // Forgets every cached token from `tokens` on (a later turn that diverges from the cache).
  void truncate(std::int64_t tokens);
  void reset() { truncate(0); }
  // Bytes the buffers hold now.
  std::size_t allocated_bytes() const;

 private:
  friend class DecoderModel;
  KvCache(std::int64_t layers, std::int64_t kv_heads, std::int64_t head_dim, std::size_t element_bytes,
          std::int64_t context_length);
  void reserve(std::int64_t tokens);

  std::int64_t kv_heads_ = 0, head_dim_ = 0;
  std::size_t element_bytes_ = 4;
  std::int64_t context_length_ = 0;
  std::int64_t capacity_ = 0;  // tokens the buffers hold
  std::int64_t cached_ = 0;
  // Per layer: key, value; each [1, kv_heads, capacity, head_dim] of the model's KV type.
  std::vector<std::vector<std::uint8_t>> kv_;
};

// text.onnx: immutable after construction and thread-safe; any number of sequences (caches) run
// on it at once.
class DecoderModel {
 public:
  DecoderModel(OnnxEnvironment& environment, const std::filesystem::path& model, const ModelConfig& config,
               const SessionOptions& options = {});

  // An empty cache for one sequence of at most `context_length` tokens (prompt and generated
  // together); memory is taken as the sequence grows. Throws InvalidInput if not positive.
  KvCache new_cache(std::int64_t context_length = 4096) const;

  // Runs `S` new tokens (embeddings [S, (1+K)H], 3-D positions [3, S]) after the ones `cache`
  // holds, and appends theirs. Throws InvalidInput if they would not fit in the context.
  DecoderOutput forward(KvCache& cache, std::span<const float> embeddings, std::span<const std::int64_t> positions) const;

  const OnnxSession& session() const { return session_; }

 private:
  OnnxSession session_;
  ModelConfig config_;
  bool has_hidden_states_ = false;
  ONNXTensorElementDataType kv_type_ = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;  // float or float16 (the model's)
  std::size_t kv_element_bytes_ = 4;
};

}  // namespace q3vl
