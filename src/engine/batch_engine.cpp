#include "engine/batch_engine.h"

#include <algorithm>
#include <chrono>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include "engine/model_data.h"
#include "q3vl/error.h"

namespace q3vl {
namespace {

// How long a step waits for the generating sequences that have not asked for it yet: they are
// sampling and streaming their last token, which takes well under this.
constexpr auto kGatherWindow = std::chrono::milliseconds(20);

std::int64_t tokens_within_budget(const BatchOptions& options, std::int64_t context, std::uint64_t bytes_per_token) {
  if (options.kv_cache_bytes == 0) return context;
  // Each row keeps one spare position for the placeholder of steps it sits out.
  const std::uint64_t per_row = options.kv_cache_bytes / static_cast<std::uint64_t>(options.max_sequences) / bytes_per_token;
  if (per_row < 2) {
    throw InvalidInput("a KV cache of " + std::to_string(options.kv_cache_bytes >> 20) + " MB cannot hold one token for each of " +
                       std::to_string(options.max_sequences) + " sequences (" + std::to_string(bytes_per_token) +
                       " bytes per token)");
  }
  return std::min<std::int64_t>(context, static_cast<std::int64_t>(per_row - 1));
}

}  // namespace

BatchEngineState::BatchEngineState(std::shared_ptr<const Model> shared_model, const BatchOptions& batch_options)
    : model(shared_model ? std::move(shared_model) : throw InvalidInput("a batch engine needs a loaded model")),
      data(model->data()), options(batch_options) {
  if (options.max_sequences < 1 || options.max_sequences > 1024) {
    throw InvalidInput("max_sequences must be between 1 and 1024, not " + std::to_string(options.max_sequences));
  }
  if (options.context_length < 0) throw InvalidInput("context_length must be 0 (the package's) or positive");
  if (options.prefill_chunk_tokens < 1) {
    throw InvalidInput("prefill_chunk_tokens must be positive, not " + std::to_string(options.prefill_chunk_tokens));
  }
  const KvLayout layout = data.decoder.kv_layout();
  const std::int64_t context = options.context_length > 0 ? options.context_length : model->max_length();
  tokens_per_sequence = tokens_within_budget(options, context, layout.bytes_per_token());
  pool_ = std::make_shared<KvPool>(layout, options.max_sequences, tokens_per_sequence);
  prefixes_.resize(static_cast<std::size_t>(options.max_sequences));
  thread_ = std::thread([this] { run(); });
}

BatchEngineState::~BatchEngineState() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

KvCache BatchEngineState::new_cache(std::int64_t context_length) {
  KvCache cache(pool_, context_length);
  publish(cache, {});  // a row's last owner may have left its prefix behind
  return cache;
}

void BatchEngineState::publish(const KvCache& cache, CachedPrefix prefix) {
  std::lock_guard lock(prefixes_mutex_);
  prefixes_.at(static_cast<std::size_t>(cache.row())) = std::move(prefix);
}

namespace {

// How many leading tokens of `prompt` (items `items`) `cached` holds: equal ids, and every item
// started within them wholly inside and of the same content.
std::size_t usable_prefix(const CachedPrefix& cached, const std::vector<std::int64_t>& prompt,
                          const std::vector<CachedPrefix::Item>& items) {
  std::size_t n = 0;
  while (n < cached.ids.size() && n < prompt.size() && cached.ids[n] == prompt[n]) ++n;
  for (const CachedPrefix::Item& item : items) {
    if (item.start >= n) break;
    const bool same = std::any_of(cached.items.begin(), cached.items.end(), [&](const CachedPrefix::Item& other) {
      return other.start == item.start && other.end == item.end && other.digest == item.digest;
    });
    if (!same || item.end > n) return item.start;
  }
  return n;
}

}  // namespace

std::optional<CachedPrefix> BatchEngineState::adopt_longer_prefix(KvCache& cache, const std::vector<std::int64_t>& prompt,
                                                                  const std::vector<CachedPrefix::Item>& items, std::size_t own) {
  // Worth a trip to the engine thread only when it saves a few tokens of prefill.
  const std::size_t worth = own + 8;
  {
    std::lock_guard lock(prefixes_mutex_);
    const bool any = std::any_of(prefixes_.begin(), prefixes_.end(), [&](const CachedPrefix& p) { return p.ids.size() >= worth; });
    if (!any) return std::nullopt;
  }
  std::optional<CachedPrefix> adopted;
  // On the engine thread: no row's cache changes while the prefixes are read and copied.
  exclusive([&] {
    std::lock_guard lock(prefixes_mutex_);
    std::size_t best = 0;
    std::int64_t from = -1;
    for (std::size_t row = 0; row < prefixes_.size(); ++row) {
      if (static_cast<std::int64_t>(row) == cache.row()) continue;
      // Leave the last prompt token to be fed: its logits start the reply.
      const std::size_t n = std::min(usable_prefix(prefixes_[row], prompt, items), prompt.size() - 1);
      if (n > best) {
        best = n;
        from = static_cast<std::int64_t>(row);
      }
    }
    if (from < 0 || best < worth || std::cmp_greater(best, cache.context_length())) return;
    pool_->reserve(static_cast<std::int64_t>(best));
    pool_->copy_prefix(from, cache.row(), static_cast<std::int64_t>(best));
    pool_->set_cached(cache.row(), static_cast<std::int64_t>(best));
    const CachedPrefix& source = prefixes_[static_cast<std::size_t>(from)];
    CachedPrefix copy;
    copy.ids.assign(source.ids.begin(), source.ids.begin() + static_cast<std::ptrdiff_t>(best));
    copy.max_positions.assign(source.max_positions.begin(), source.max_positions.begin() + static_cast<std::ptrdiff_t>(best));
    for (const CachedPrefix::Item& item : source.items) {
      if (item.end <= best) copy.items.push_back(item);
    }
    prefixes_[static_cast<std::size_t>(cache.row())] = copy;
    adopted = std::move(copy);
    std::lock_guard stats_lock(mutex_);
    stats_.shared_prefix_tokens += static_cast<std::int64_t>(best);
  });
  return adopted;
}

DecoderOutput BatchEngineState::prefill(KvCache& cache, std::span<const float> embeddings, std::span<const std::int64_t> positions) {
  DecoderOutput out;
  std::future<void> done;
  submit({[&] { out = data.decoder.forward(cache, embeddings, positions); }, true, {}}, done);
  done.get();
  return out;
}

void BatchEngineState::exclusive(const std::function<void()>& work) {
  std::future<void> done;
  submit({work, false, {}}, done);
  done.get();
}

void BatchEngineState::submit(Work work, std::future<void>& done) {
  done = work.done.get_future();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw Error("the batch engine is shutting down");
    work_.push_back(std::move(work));
  }
  wake_.notify_all();
}

std::vector<float> BatchEngineState::step(KvCache& cache, std::span<const float> embedding,
                                          const std::array<std::int64_t, 3>& position) {
  std::future<std::vector<float>> logits;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw Error("the batch engine is shutting down");
    steps_.push_back({&cache, embedding, position, {}});
    logits = steps_.back().logits.get_future();
  }
  wake_.notify_all();
  return logits.get();
}

BatchEngineState::Generating::Generating(BatchEngineState& engine) : engine_(engine) {
  std::lock_guard lock(engine_.mutex_);
  ++engine_.generating_;
}

BatchEngineState::Generating::~Generating() {
  {
    std::lock_guard lock(engine_.mutex_);
    --engine_.generating_;
  }
  engine_.wake_.notify_all();  // a step may be waiting for this sequence
}

BatchStats BatchEngineState::stats() const {
  std::lock_guard lock(mutex_);
  BatchStats stats = stats_;
  stats.kv_cache_bytes = pool_->allocated_bytes();
  return stats;
}

// Each round: one batched step of the sequences that are generating (after waiting briefly for all
// of them), then one piece of other work, first come first served.
void BatchEngineState::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || !steps_.empty() || !work_.empty(); });
    if (stopping_) break;
    if (std::cmp_less(steps_.size(), generating_)) {
      wake_.wait_for(lock, kGatherWindow, [&] { return stopping_ || std::cmp_greater_equal(steps_.size(), generating_); });
      if (stopping_) break;
    }
    std::vector<Step> steps = std::move(steps_);
    steps_.clear();
    std::optional<Work> work;
    if (!work_.empty()) {
      work.emplace(std::move(work_.front()));
      work_.pop_front();
    }
    lock.unlock();
    if (!steps.empty()) run_steps(steps);
    if (work) run_work(*work);
    lock.lock();
  }
  for (Step& step : steps_) step.logits.set_exception(std::make_exception_ptr(Error("the batch engine shut down")));
  for (Work& work : work_) work.done.set_exception(std::make_exception_ptr(Error("the batch engine shut down")));
  steps_.clear();
  work_.clear();
}

void BatchEngineState::run_steps(std::vector<Step>& steps) {
  const auto n = static_cast<std::int64_t>(steps.size());
  try {  // whatever fails (memory included) fails these steps, never the engine thread
    std::vector<KvCache*> caches;
    std::vector<float> embeddings;
    std::vector<std::int64_t> positions(static_cast<std::size_t>(3 * n));
    for (std::int64_t i = 0; i < n; ++i) {
      const Step& step = steps[static_cast<std::size_t>(i)];
      caches.push_back(step.cache);
      embeddings.insert(embeddings.end(), step.embedding.begin(), step.embedding.end());
      for (std::int64_t axis = 0; axis < 3; ++axis) positions[static_cast<std::size_t>(axis * n + i)] = step.position[static_cast<std::size_t>(axis)];
    }
    const std::vector<float> logits = data.decoder.forward_batch(caches, embeddings, positions);
    const std::size_t vocab = logits.size() / steps.size();
    for (std::size_t i = 0; i < steps.size(); ++i) {
      try {
        steps[i].logits.set_value(std::vector<float>(logits.begin() + static_cast<std::ptrdiff_t>(i * vocab),
                                                     logits.begin() + static_cast<std::ptrdiff_t>((i + 1) * vocab)));
      } catch (const std::bad_alloc&) {
        steps[i].logits.set_exception(std::current_exception());
      }
    }
  } catch (...) {
    for (Step& step : steps) step.logits.set_exception(std::current_exception());
  }
  std::lock_guard lock(mutex_);
  ++stats_.steps;
  stats_.step_tokens += n;
  stats_.largest_batch = std::max(stats_.largest_batch, n);
}

void BatchEngineState::run_work(Work& work) {
  try {
    work.run();
    work.done.set_value();
  } catch (...) {
    work.done.set_exception(std::current_exception());
  }
  std::lock_guard lock(mutex_);
  ++(work.prefill ? stats_.prefill_chunks : stats_.exclusive_jobs);
}

std::shared_ptr<BatchEngine> BatchEngine::create(std::shared_ptr<const Model> model, const BatchOptions& options) {
  return std::shared_ptr<BatchEngine>(new BatchEngine(std::make_unique<BatchEngineState>(std::move(model), options)));
}

BatchEngine::BatchEngine(std::unique_ptr<BatchEngineState> state) : state_(std::move(state)) {}
BatchEngine::~BatchEngine() = default;

std::int64_t BatchEngine::max_sequences() const { return state_->options.max_sequences; }
std::int64_t BatchEngine::tokens_per_sequence() const { return state_->tokens_per_sequence; }
std::int64_t BatchEngine::prefill_chunk_tokens() const { return state_->options.prefill_chunk_tokens; }
std::uint64_t BatchEngine::bytes_per_token() const { return state_->data.decoder.kv_layout().bytes_per_token(); }
BatchStats BatchEngine::stats() const { return state_->stats(); }
const Model& BatchEngine::model() const { return *state_->model; }

}  // namespace q3vl
