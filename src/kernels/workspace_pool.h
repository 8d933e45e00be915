#pragma once
// Scratch buffers kept from call to call by a kernel's op, one per task running at once, so that a
// task reuses pages already mapped instead of faulting in fresh ones: on a VM each new page costs
// microseconds, which added up to a tenth of a 448x448 image's attention. One pool serves every
// node of its op type in every session; between calls it keeps workspaces of up to `kept_bytes`
// and frees larger ones (trim), whose pages cost little beside the work that fills them.
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace q3vl::kernels {

template <typename Workspace>
class WorkspacePool {
 public:
  explicit WorkspacePool(std::size_t kept_bytes) : kept_bytes_(kept_bytes) {}

  std::unique_ptr<Workspace> take() {
    const std::lock_guard lock(mutex_);
    if (free_.empty()) return std::make_unique<Workspace>();
    std::unique_ptr<Workspace> workspace = std::move(free_.back().workspace);
    free_.pop_back();
    return workspace;
  }
  // `bytes`: what the workspace holds now.
  void give_back(std::unique_ptr<Workspace> workspace, std::size_t bytes) {
    const std::lock_guard lock(mutex_);
    free_.push_back({std::move(workspace), bytes});
  }
  // Frees the workspaces larger than kept_bytes; a call does this when its tasks are done, so that
  // they reuse each other's large buffers but the pool holds only small ones between calls.
  void trim() {
    const std::lock_guard lock(mutex_);
    std::erase_if(free_, [&](const Held& held) { return held.bytes > kept_bytes_; });
  }

 private:
  struct Held {
    std::unique_ptr<Workspace> workspace;
    std::size_t bytes = 0;
  };
  std::size_t kept_bytes_;
  std::mutex mutex_;
  std::vector<Held> free_;
};

}  // namespace q3vl::kernels
