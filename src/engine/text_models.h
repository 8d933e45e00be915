#pragma once
// The text side of a package at run time: embedding.onnx (tokens + visual features -> wide
// embeddings) and text.onnx. The models are shared and stateless (one per package, used from any
// thread); each sequence brings its own KvCache (engine/kv_cache.h), which carries over between
// calls, so a later turn only processes its new tokens.
#include <cstdint>
#include <span>
#include <vector>

#include "model/config.h"
#include "ort/onnx_session.h"
#include "engine/kv_cache.h"
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

// text.onnx: immutable after construction and thread-safe; any number of sequences (caches) run
// on it at once.
class DecoderModel {
 public:
  DecoderModel(OnnxEnvironment& environment, const std::filesystem::path& model, const ModelConfig& config,
               const SessionOptions& options = {});

  // An empty cache for one sequence of at most `context_length` tokens (prompt and generated
  // together), in a pool of its own; memory is taken as the sequence grows. Throws InvalidInput if
  // not positive.
  KvCache new_cache(std::int64_t context_length = 4096) const;
  // The shape of this model's cache, for pools that several sequences share.
  KvLayout kv_layout() const;

  // Runs `S` new tokens (embeddings [S, (1+K)H], 3-D positions [3, S]) after the ones `cache`
  // holds, and appends theirs. Throws InvalidInput if they would not fit in the context.
  DecoderOutput forward(KvCache& cache, std::span<const float> embeddings, std::span<const std::int64_t> positions) const;

  // One new token for each of several sequences of one pool, in one run: `embeddings` [n, (1+K)H],
  // `positions` [3, n] (axis-major), caches[i] takes row i of both. Rows of the pool between the
  // sequences' that are not in the batch are fed a placeholder written past their last token (the
  // pool keeps a spare position for it), so what they hold is untouched. Returns the logits
  // [n, vocab]. Not thread-safe for one pool: one thread runs a pool's steps.
  std::vector<float> forward_batch(std::span<KvCache* const> caches, std::span<const float> embeddings,
                                   std::span<const std::int64_t> positions) const;

  const OnnxSession& session() const { return session_; }

 private:
  void check_layout(const KvCache& cache) const;

  OnnxSession session_;
  ModelConfig config_;
  bool has_hidden_states_ = false;
  ONNXTensorElementDataType kv_type_ = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;  // float or float16 (the model's)
  std::size_t kv_element_bytes_ = 4;
};

}  // namespace q3vl
