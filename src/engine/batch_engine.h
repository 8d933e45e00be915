#pragma once
// Behind q3vl::BatchEngine: the thread that runs every model pass of the engine's conversations, and
// their shared KV cache. Conversations call in from their own threads and wait for the result.
#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/text_models.h"
#include "q3vl/batch.h"
#include "util/sha256.h"

namespace q3vl {

struct ModelData;

// What a sequence's KV cache holds, as the other sequences may reuse it: the tokens, each token's
// largest M-RoPE position, and the images/videos among them (their spans and content digests).
struct CachedPrefix {
  struct Item {
    std::size_t start = 0, end = 0;
    Sha256Digest digest{};
  };
  std::vector<std::int64_t> ids;
  std::vector<std::int64_t> max_positions;
  std::vector<Item> items;
};

struct BatchEngineState {
  BatchEngineState(std::shared_ptr<const Model> model, const BatchOptions& options);
  ~BatchEngineState();

  // A row of the shared cache for one conversation of at most `context_length` tokens (no more than
  // tokens_per_sequence); throws Error when all rows are taken.
  KvCache new_cache(std::int64_t context_length);

  // Each of these runs on the engine thread and returns (or throws) what it gave.
  // `tokens` of a prompt (at most prefill_chunk_tokens) after what the cache holds.
  DecoderOutput prefill(KvCache& cache, std::span<const float> embeddings, std::span<const std::int64_t> positions);
  // One generated token: batched with every other sequence's that is waiting. Returns the logits.
  std::vector<float> step(KvCache& cache, std::span<const float> embedding, const std::array<std::int64_t, 3>& position);
  // Work that must not share the cores with decoder passes (the vision encoder).
  void exclusive(const std::function<void()>& work);

  // Records what `cache`'s row holds, for the others to reuse; called before its cache is
  // overwritten where it shrank (truncation), and whenever convenient where it grew.
  void publish(const KvCache& cache, CachedPrefix prefix);
  // If another row holds a longer prefix of `prompt` (whose items are `items`) than `own` tokens,
  // copies it into `cache`'s row and returns what that row now holds. A prefix never ends inside an
  // item, and an item counts only with the same content digest.
  std::optional<CachedPrefix> adopt_longer_prefix(KvCache& cache, const std::vector<std::int64_t>& prompt,
                                                  const std::vector<CachedPrefix::Item>& items, std::size_t own);

  // While one exists, its sequence is generating: before each step the engine waits (briefly) for
  // that sequence's next token, so the step takes every generating sequence at once.
  class Generating {
   public:
    explicit Generating(BatchEngineState& engine);
    ~Generating();
    Generating(const Generating&) = delete;
    Generating& operator=(const Generating&) = delete;

   private:
    BatchEngineState& engine_;
  };

  BatchStats stats() const;

  std::shared_ptr<const Model> model;
  ModelData& data;
  BatchOptions options;
  std::int64_t tokens_per_sequence = 0;

 private:
  struct Step {
    KvCache* cache;
    std::span<const float> embedding;
    std::array<std::int64_t, 3> position;
    std::promise<std::vector<float>> logits;
  };
  struct Work {
    std::function<void()> run;
    bool prefill = false;
    std::promise<void> done;
  };

  void run();
  void run_steps(std::vector<Step>& steps);
  void run_work(Work& work);
  void submit(Work work, std::future<void>& done);

  std::shared_ptr<KvPool> pool_;
  std::mutex prefixes_mutex_;
  std::vector<CachedPrefix> prefixes_;  // per row
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Step> steps_;
  std::deque<Work> work_;
  std::int64_t generating_ = 0;
  bool stopping_ = false;
  BatchStats stats_;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace q3vl
