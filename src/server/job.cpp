#include "server/job.h"

namespace q3vl::server {

std::optional<JobEvent> Job::next_event(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
  JobEvent event = std::move(events_.front());
  events_.pop_front();
  return event;
}

void Job::cancel(CancelReason reason) {
  CancelReason none = CancelReason::None;
  reason_.compare_exchange_strong(none, reason);
}

void Job::push(JobEvent event) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  changed_.notify_all();
}

bool Job::cancelled() {
  if (reason_.load() == CancelReason::None && Clock::now() > deadline_) cancel(CancelReason::Timeout);
  return reason_.load() != CancelReason::None;
}

}  // namespace q3vl::server
