#pragma once
// Sequence slots on one shared Model: `parallel` conversations, each with its own row of a shared
// KV cache and a thread that generates for it, and a bounded queue in front of them. The slots'
// model passes run on one BatchEngine: their decoder steps are batched, new prompts are fed in
// chunks between the steps. A request goes to an idle
// slot whose last chat shares the most leading messages with it (so a client resending its history
// hits that slot's KV cache), else to the slot idle longest, else waits in the queue; a full queue
// is a 429, a server shutting down a 503.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "q3vl/conversation.h"
#include "server/engine_request.h"
#include "server/job.h"
#include "server/metrics.h"

namespace q3vl::server {

struct SchedulerOptions {
  int parallel = 1;
  int max_queue = 16;
  ConversationOptions conversation;  // each slot's (context length, vision memory budget, ...)
  std::uint64_t kv_cache_bytes = 0;  // the slots' KV caches together; 0: parallel x context
  std::int64_t prefill_chunk_tokens = 128;  // prompt tokens fed between two batched steps
  std::int64_t max_prompt_tokens = 0;  // 0: the context length
  MediaPolicy media;
  ReplyLimits reply;
};

class Scheduler {
 public:
  Scheduler(std::shared_ptr<const Model> model, SchedulerOptions options, ServerMetrics& metrics);
  ~Scheduler();  // cancels what runs, joins the slot threads
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Hands the job to a slot or the queue. Throws ApiError 429 (queue full) or 503 (shutting down).
  void submit(const std::shared_ptr<Job>& job);
  // New jobs are refused from now on; those admitted go on.
  void begin_shutdown();
  // Waits until no job runs or waits; false if the deadline came first.
  bool wait_idle(Clock::time_point deadline);
  void cancel_all(CancelReason reason);

  int parallel() const { return static_cast<int>(slots_.size()); }
  const BatchEngine& engine() const { return *engine_; }
  std::int64_t context_length() const { return context_length_; }

 private:
  struct Slot {
    explicit Slot(Conversation c) : conversation(std::move(c)) {}
    Conversation conversation;
    std::vector<Sha256Digest> last_keys;  // the messages of the chat its cache holds
    std::shared_ptr<Job> assigned;
    bool busy = false;
    Clock::time_point idle_since = Clock::now();
    std::thread thread;
  };

  void work(Slot& slot);
  void run(Slot& slot, Job& job);
  Reply generate(Slot& slot, Job& job);
  void publish_gauges_locked();

  std::shared_ptr<const Model> model_;
  SchedulerOptions options_;
  ServerMetrics& metrics_;
  std::shared_ptr<BatchEngine> engine_;
  std::int64_t context_length_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::shared_ptr<Job>> running_;
  bool shutting_down_ = false;
  bool stopping_ = false;
};

}  // namespace q3vl::server
