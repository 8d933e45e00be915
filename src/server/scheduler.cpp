#include "server/scheduler.h"

#include <algorithm>
#include <optional>

#include "q3vl/error.h"
#include "server/openai_json.h"

namespace q3vl::server {
namespace {

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::size_t shared_leading(const std::vector<Sha256Digest>& a, const std::vector<Sha256Digest>& b) {
  std::size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

JobEvent failure(int status, std::string message, std::string param = {}, std::string code = {}) {
  JobEvent event;
  event.kind = JobEvent::Kind::Failed;
  event.status = status;
  event.message = std::move(message);
  event.param = std::move(param);
  event.code = std::move(code);
  return event;
}

}  // namespace

Scheduler::Scheduler(std::shared_ptr<const Model> model, SchedulerOptions options, ServerMetrics& metrics)
    : model_(std::move(model)), options_(std::move(options)), metrics_(metrics) {
  if (options_.parallel < 1 || options_.parallel > 256) throw InvalidInput("--parallel must be between 1 and 256");
  if (options_.max_queue < 0) throw InvalidInput("--max-queue must be 0 or more");
  BatchOptions batch;
  batch.max_sequences = options_.parallel;
  batch.context_length = options_.conversation.context_length;
  batch.kv_cache_bytes = options_.kv_cache_bytes;
  batch.prefill_chunk_tokens = options_.prefill_chunk_tokens;
  engine_ = BatchEngine::create(model_, batch);
  options_.conversation.engine = engine_;
  options_.conversation.context_length = 0;  // the engine's: what the KV budget allows
  for (int i = 0; i < options_.parallel; ++i) {
    slots_.push_back(std::make_unique<Slot>(Conversation(model_, options_.conversation)));
  }
  context_length_ = slots_.front()->conversation.context_length();
  for (auto& slot : slots_) slot->thread = std::thread([this, s = slot.get()] { work(*s); });
  std::lock_guard lock(mutex_);
  publish_gauges_locked();
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    shutting_down_ = true;
    for (auto& job : queue_) job->cancel(CancelReason::Shutdown);
    for (auto& job : running_) job->cancel(CancelReason::Shutdown);
  }
  changed_.notify_all();
  for (auto& slot : slots_) {
    if (slot->thread.joinable()) slot->thread.join();
  }
  // Jobs still queued never ran: tell their waiting HTTP threads.
  for (auto& job : queue_) job->push(failure(503, "the server is shutting down"));
}

void Scheduler::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard lock(mutex_);
    if (shutting_down_) throw ApiError(503, "the server is shutting down; retry on another replica");
    Slot* best = nullptr;
    std::size_t best_shared = 0;
    for (auto& slot : slots_) {
      if (slot->busy || slot->assigned) continue;
      const std::size_t shared = shared_leading(slot->last_keys, job->message_keys());
      if (best == nullptr || shared > best_shared || (shared == best_shared && slot->idle_since < best->idle_since)) {
        best = slot.get();
        best_shared = shared;
      }
    }
    if (best != nullptr) {
      best->assigned = job;
    } else {
      if (static_cast<int>(queue_.size()) >= options_.max_queue) {
        throw ApiError(429, "the server is busy: all " + std::to_string(slots_.size()) + " slots are generating and " +
                                std::to_string(queue_.size()) + " requests are waiting; retry shortly");
      }
      queue_.push_back(job);
    }
    publish_gauges_locked();
  }
  changed_.notify_all();
}

void Scheduler::begin_shutdown() {
  std::lock_guard lock(mutex_);
  shutting_down_ = true;
}

bool Scheduler::wait_idle(Clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  return changed_.wait_until(lock, deadline, [&] {
    return queue_.empty() && running_.empty() &&
           std::none_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->assigned != nullptr; });
  });
}

void Scheduler::cancel_all(CancelReason reason) {
  std::lock_guard lock(mutex_);
  for (auto& job : queue_) job->cancel(reason);
  for (auto& job : running_) job->cancel(reason);
  for (auto& slot : slots_) {
    if (slot->assigned) slot->assigned->cancel(reason);
  }
}

void Scheduler::publish_gauges_locked() {
  metrics_.set_queue_depth(static_cast<std::int64_t>(queue_.size()));
  metrics_.set_active_sequences(static_cast<std::int64_t>(running_.size()));
  std::int64_t used = 0;
  for (const auto& slot : slots_) {
    if (!slot->busy) used += slot->conversation.cached_tokens();  // a busy slot's cache is its thread's
  }
  metrics_.set_kv_cache(used, context_length_ * static_cast<std::int64_t>(slots_.size()));
  const BatchStats batch = engine_->stats();
  metrics_.set_batching(batch.steps, batch.step_tokens, static_cast<std::int64_t>(batch.kv_cache_bytes));
}

void Scheduler::work(Slot& slot) {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || slot.assigned || !queue_.empty(); });
      if (stopping_) return;
      if (slot.assigned) {
        job = std::move(slot.assigned);
        slot.assigned.reset();
      } else {
        job = queue_.front();
        queue_.pop_front();
      }
      slot.busy = true;
      running_.push_back(job);
      publish_gauges_locked();
    }
    run(slot, *job);
    {
      std::lock_guard lock(mutex_);
      std::erase(running_, job);
      slot.busy = false;
      slot.idle_since = Clock::now();
      publish_gauges_locked();
    }
    changed_.notify_all();
  }
}

// The request's media resolved, its reply generated with events streaming out; its scratch files
// (video data URLs) are removed on return, before the answer is sent.
Reply Scheduler::generate(Slot& slot, Job& job) {
  if (job.cancelled()) throw Cancelled("cancelled while queued");
  RequestScratch scratch;
  const std::vector<Message> messages = resolve_messages(job.request(), options_.media, scratch);
  ReplyOptions options = reply_options(job.request(), *model_, options_.reply);
  job.release_request();
  std::vector<TokenChoice> pending;  // tokens whose text has not been sent yet
  options.cancelled = [&] { return job.cancelled(); };
  options.on_prompt_ready = [&](std::int64_t prompt, std::int64_t cached) {
    const std::int64_t limit = options_.max_prompt_tokens > 0 ? options_.max_prompt_tokens : context_length_;
    if (prompt > limit) {
      throw ApiError(400, "the prompt is " + std::to_string(prompt) + " tokens, more than this server's limit of " +
                              std::to_string(limit), "messages", "context_length_exceeded");
    }
    JobEvent ready;
    ready.kind = JobEvent::Kind::Ready;
    ready.prompt_tokens = prompt;
    ready.cached_tokens = cached;
    job.push(std::move(ready));
  };
  options.on_token = [&](const TokenChoice& choice) { pending.push_back(choice); };
  slot.last_keys.clear();  // until the reply is done, the cache holds a mix
  std::optional<Clock::time_point> last_piece;
  // Each classified piece (answer, reasoning, a whole tool call) is one chunk; the log
  // probabilities of tokens whose text is held back (half a character, the start of a stop string
  // or of a tag, a tool call being written) go with the next one.
  options.on_delta = [&](const ReplyDelta& delta) {
    JobEvent piece;
    piece.kind = JobEvent::Kind::Text;
    piece.delta = delta_json(delta);
    piece.logprobs = std::move(pending);
    pending.clear();
    job.push(std::move(piece));
  };
  Reply reply = slot.conversation.respond(messages, options, [&](std::string_view) {
    // What a streaming client waits between pieces of text.
    const auto now = Clock::now();
    if (last_piece) metrics_.time_per_output_token(seconds(now - *last_piece));
    last_piece = now;
  });
  slot.last_keys = job.message_keys();
  return reply;
}

// One request on one slot; every outcome becomes an event for the waiting HTTP thread.
void Scheduler::run(Slot& slot, Job& job) {
  const auto started = Clock::now();
  try {
    Reply reply = generate(slot, job);
    metrics_.tokens(reply.prompt_tokens, reply.cached_tokens, static_cast<std::int64_t>(reply.tokens.size()));
    if (!reply.tokens.empty()) {
      metrics_.time_to_first_token(seconds(started - job.arrived()) + reply.timings.time_to_first_token_ms / 1000.0);
    }
    JobEvent finished;
    finished.kind = JobEvent::Kind::Finished;
    finished.reply = std::move(reply);
    job.push(std::move(finished));
  } catch (const ApiError& e) {
    job.push(failure(e.status(), e.what(), e.param(), e.code()));
  } catch (const Cancelled&) {
    switch (job.cancel_reason()) {
      case CancelReason::Timeout: job.push(failure(504, "the request took longer than the server's --request-timeout")); break;
      case CancelReason::Shutdown: job.push(failure(503, "the server is shutting down")); break;
      default: job.push(failure(499, "the client closed the connection")); break;
    }
  } catch (const InvalidInput& e) {
    const std::string message = e.what();
    const bool overflow = message.rfind("context overflow", 0) == 0;
    job.push(failure(400, message, overflow ? "messages" : "", overflow ? "context_length_exceeded" : ""));
  } catch (const Unsupported& e) {
    job.push(failure(400, e.what()));
  } catch (const std::exception& e) {
    job.push(failure(500, std::string("internal error: ") + e.what()));
  }
}

}  // namespace q3vl::server
