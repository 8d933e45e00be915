#pragma once
// Continuous batching: Conversations created with the same BatchEngine (ConversationOptions::engine)
// run their decoder steps together. One engine thread does all of their model work: each step it
// runs one decoder pass with a new token of every sequence that is generating (the weights are read
// once for all of them), then one piece of the other work that is waiting: a chunk of a prompt's
// prefill or a vision encoder pass. So a new request's prompt is fed in chunks between the
// running streams' steps, and the cores are never split between passes.
//
// The keys and values of all its sequences live in one cache of `max_sequences` rows; its memory
// grows as the longest sequence does and stays under `kv_cache_bytes`, which sets how long each
// sequence may be (tokens_per_sequence). Each Conversation holds a row while it exists.
//
// A conversation whose prompt starts with what another one's cache holds (the same system prompt,
// image and question, say) copies those keys and values instead of computing them.
//
// Greedy replies are the same batched or alone: every sequence keeps its own positions, cache
// length, sampling parameters and stop conditions.
#include <cstdint>
#include <memory>

#include "q3vl/model.h"

namespace q3vl {

struct BatchOptions {
  std::int64_t max_sequences = 4;  // conversations that can exist at once (rows of the KV cache)
  std::int64_t context_length = 0;  // tokens per sequence; 0: the package's max_length
  // The most memory the KV cache may take; 0: whatever max_sequences x context_length need. When
  // smaller, each sequence gets the tokens the budget allows (at least 1 token, or an error).
  std::uint64_t kv_cache_bytes = 0;
  // The most prompt tokens fed between two decoder steps of the running sequences: smaller keeps
  // their tokens flowing while a long prompt is prefilled, larger prefills a little faster.
  std::int64_t prefill_chunk_tokens = 128;
};

struct BatchStats {
  std::int64_t steps = 0;            // batched decoder steps run
  std::int64_t step_tokens = 0;      // tokens those steps generated (their batch sizes summed)
  std::int64_t largest_batch = 0;
  std::int64_t prefill_chunks = 0;   // prompt chunks run
  std::int64_t exclusive_jobs = 0;   // vision encoder passes and other work run alone
  std::int64_t shared_prefix_tokens = 0;  // prompt tokens copied from another sequence's cache
  std::uint64_t kv_cache_bytes = 0;  // allocated now
};

struct BatchEngineState;  // the engine thread and the KV cache (internal)

class BatchEngine {
 public:
  // Starts the engine thread. Throws InvalidInput for options out of range, or a kv_cache_bytes
  // budget too small for one token per sequence.
  static std::shared_ptr<BatchEngine> create(std::shared_ptr<const Model> model, const BatchOptions& options = {});
  ~BatchEngine();  // waits for the work in progress, fails what is still queued
  BatchEngine(const BatchEngine&) = delete;
  BatchEngine& operator=(const BatchEngine&) = delete;

  std::int64_t max_sequences() const;
  std::int64_t tokens_per_sequence() const;  // the context each conversation may use
  std::int64_t prefill_chunk_tokens() const;
  std::uint64_t bytes_per_token() const;  // KV cache memory of one token of one sequence
  BatchStats stats() const;
  const Model& model() const;

  BatchEngineState& state() const { return *state_; }  // for the library's own code

 private:
  explicit BatchEngine(std::unique_ptr<BatchEngineState> state);
  std::unique_ptr<BatchEngineState> state_;
};

}  // namespace q3vl
