#pragma once
// The server's counters, gauges and histograms, rendered in Prometheus' text exposition format for
// GET /metrics. Thread-safe; every name starts with q3vl_.
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace q3vl::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Prometheus lines for `name` (buckets cumulative, +Inf, _sum, _count); the caller holds the lock.
  void render(const std::string& name, std::string& out) const;

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative; last = above every bound
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();

  void request_finished(int status);
  void tokens(std::int64_t prompt, std::int64_t cached, std::int64_t generated);
  void time_to_first_token(double seconds);
  void time_per_output_token(double seconds);
  void request_duration(double seconds);
  void set_queue_depth(std::int64_t depth);
  void set_active_sequences(std::int64_t active);
  // Tokens held in the slots' KV caches and what they could hold together.
  void set_kv_cache(std::int64_t used_tokens, std::int64_t capacity_tokens);
  // The batch engine's totals: decoder steps, tokens they generated, KV cache memory allocated.
  void set_batching(std::int64_t steps, std::int64_t step_tokens, std::int64_t kv_bytes);

  std::string render() const;

 private:
  mutable std::mutex mutex_;
  std::map<int, std::uint64_t> requests_by_status_;
  std::uint64_t prompt_tokens_ = 0, cached_tokens_ = 0, generated_tokens_ = 0;
  std::int64_t queue_depth_ = 0, active_sequences_ = 0, kv_used_ = 0, kv_capacity_ = 0;
  std::int64_t batch_steps_ = 0, batch_tokens_ = 0, kv_bytes_ = 0;
  Histogram ttft_, per_token_, duration_;
};

}  // namespace q3vl::server
