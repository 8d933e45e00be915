#include "server/metrics.h"

#include <algorithm>
#include <cstdio>
#include <type_traits>

namespace q3vl::server {
namespace {

std::string number(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

void metric(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

// A metric with one unlabelled sample.
template <typename Value>
void sample(std::string& out, const std::string& name, const char* type, const char* help, Value value) {
  metric(out, name, type, help);
  if constexpr (std::is_floating_point_v<Value>) {
    out += name + " " + number(value) + "\n";
  } else {
    out += name + " " + std::to_string(value) + "\n";
  }
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[static_cast<std::size_t>(bucket)];
  sum_ += value;
  ++count_;
}

void Histogram::render(const std::string& name, std::string& out) const {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + number(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum " + number(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

ServerMetrics::ServerMetrics()
    : ttft_({0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}),
      per_token_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      duration_({0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}) {}

void ServerMetrics::request_finished(int status) {
  std::lock_guard lock(mutex_);
  ++requests_by_status_[status];
}

void ServerMetrics::tokens(std::int64_t prompt, std::int64_t cached, std::int64_t generated) {
  std::lock_guard lock(mutex_);
  prompt_tokens_ += static_cast<std::uint64_t>(std::max<std::int64_t>(prompt, 0));
  cached_tokens_ += static_cast<std::uint64_t>(std::max<std::int64_t>(cached, 0));
  generated_tokens_ += static_cast<std::uint64_t>(std::max<std::int64_t>(generated, 0));
}

void ServerMetrics::time_to_first_token(double seconds) {
  std::lock_guard lock(mutex_);
  ttft_.observe(seconds);
}

void ServerMetrics::time_per_output_token(double seconds) {
  std::lock_guard lock(mutex_);
  per_token_.observe(seconds);
}

void ServerMetrics::request_duration(double seconds) {
  std::lock_guard lock(mutex_);
  duration_.observe(seconds);
}

void ServerMetrics::set_queue_depth(std::int64_t depth) {
  std::lock_guard lock(mutex_);
  queue_depth_ = depth;
}

void ServerMetrics::set_active_sequences(std::int64_t active) {
  std::lock_guard lock(mutex_);
  active_sequences_ = active;
}

void ServerMetrics::set_kv_cache(std::int64_t used_tokens, std::int64_t capacity_tokens) {
  std::lock_guard lock(mutex_);
  kv_used_ = used_tokens;
  kv_capacity_ = capacity_tokens;
}

void ServerMetrics::set_batching(std::int64_t steps, std::int64_t step_tokens, std::int64_t kv_bytes) {
  std::lock_guard lock(mutex_);
  batch_steps_ = steps;
  batch_tokens_ = step_tokens;
  kv_bytes_ = kv_bytes;
}

std::string ServerMetrics::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  metric(out, "q3vl_requests_total", "counter", "Chat completion requests answered, by HTTP status.");
  for (const auto& [status, count] : requests_by_status_) {
    out += "q3vl_requests_total{status=\"" + std::to_string(status) + "\"} " + std::to_string(count) + "\n";
  }
  sample(out, "q3vl_prompt_tokens_total", "counter", "Prompt tokens of answered requests (media tokens included).", prompt_tokens_);
  sample(out, "q3vl_prompt_cached_tokens_total", "counter", "Prompt tokens taken from the KV cache instead of computed.", cached_tokens_);
  sample(out, "q3vl_generated_tokens_total", "counter", "Tokens generated.", generated_tokens_);
  metric(out, "q3vl_time_to_first_token_seconds", "histogram", "From the request's arrival to its first generated token.");
  ttft_.render("q3vl_time_to_first_token_seconds", out);
  metric(out, "q3vl_time_per_output_token_seconds", "histogram", "Between consecutive pieces of streamed text of a request (inter-token latency).");
  per_token_.render("q3vl_time_per_output_token_seconds", out);
  metric(out, "q3vl_request_duration_seconds", "histogram", "From the request's arrival to its last byte of reply.");
  duration_.render("q3vl_request_duration_seconds", out);
  sample(out, "q3vl_queue_depth", "gauge", "Requests waiting for a free sequence slot.", queue_depth_);
  sample(out, "q3vl_active_sequences", "gauge", "Requests being generated now.", active_sequences_);
  sample(out, "q3vl_kv_cache_tokens", "gauge", "Tokens held in the KV caches of all slots.", kv_used_);
  sample(out, "q3vl_kv_cache_usage_ratio", "gauge", "KV cache tokens held over what the slots' contexts can hold.",
         kv_capacity_ > 0 ? static_cast<double>(kv_used_) / static_cast<double>(kv_capacity_) : 0.0);
  sample(out, "q3vl_kv_cache_bytes", "gauge", "Memory the shared KV cache has allocated.", kv_bytes_);
  // Their ratio is the average batch: how many sequences one decoder pass served.
  sample(out, "q3vl_decoder_steps_total", "counter", "Batched decoder steps run.", batch_steps_);
  sample(out, "q3vl_decoder_step_tokens_total", "counter", "Tokens those steps generated (their batch sizes summed).", batch_tokens_);
  return out;
}

}  // namespace q3vl::server
