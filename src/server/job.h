#pragma once
// One chat completion request on its way through the server: what the HTTP thread hands the
// scheduler, and the events the generating thread sends back (prompt accepted, pieces of the reply
// (answer, reasoning, tool calls) with their log probabilities, the finished reply, or a failure with its HTTP status). Either side may
// cancel: the client went away, the request ran out of time, or the server is shutting down.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "q3vl/conversation.h"
#include "server/chat_request.h"
#include "util/sha256.h"

namespace q3vl::server {

using Clock = std::chrono::steady_clock;

struct JobEvent {
  enum class Kind { Ready, Text, Finished, Failed };
  Kind kind = Kind::Text;
  std::int64_t prompt_tokens = 0, cached_tokens = 0;  // Ready
  nlohmann::json delta;                               // Text: {"content"}, {"reasoning_content"} or {"tool_calls"}
  std::vector<TokenChoice> logprobs;                  // Text: the tokens this piece completes
  Reply reply;                                        // Finished
  int status = 0;                                     // Failed: HTTP status, message, OpenAI code
  std::string message, param, code;
};

enum class CancelReason { None, ClientGone, Timeout, Shutdown };

class Job {
 public:
  Job(ChatRequest request, std::vector<Sha256Digest> message_keys, Clock::time_point arrived, Clock::time_point deadline)
      : request_(std::move(request)), message_keys_(std::move(message_keys)), arrived_(arrived), deadline_(deadline) {}

  const ChatRequest& request() const { return request_; }
  void release_request() { request_ = ChatRequest{}; }  // its data URLs, once decoded
  const std::vector<Sha256Digest>& message_keys() const { return message_keys_; }
  Clock::time_point arrived() const { return arrived_; }

  // The consumer (HTTP thread): the next event, or none after `timeout`.
  std::optional<JobEvent> next_event(std::chrono::milliseconds timeout);
  void cancel(CancelReason reason);

  // The producer (generating thread).
  void push(JobEvent event);
  // True once cancelled or past the deadline (which then counts as the reason).
  bool cancelled();
  CancelReason cancel_reason() const { return reason_.load(); }

 private:
  ChatRequest request_;
  std::vector<Sha256Digest> message_keys_;
  Clock::time_point arrived_, deadline_;
  std::atomic<CancelReason> reason_{CancelReason::None};
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<JobEvent> events_;
};

}  // namespace q3vl::server
