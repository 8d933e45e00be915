#include "engine/vision_cache.h"

#include <cstring>

namespace q3vl {

std::size_t VisionFeatureCache::KeyHash::operator()(const Sha256Digest& d) const noexcept {
  std::size_t value = 0;
  std::memcpy(&value, d.data(), sizeof value);  // already uniformly distributed
  return value;
}

std::shared_ptr<const VisualFeatures> VisionFeatureCache::find(const Sha256Digest& key) {
  std::lock_guard lock(mutex_);
  const auto found = index_.find(key);
  if (found == index_.end()) return nullptr;
  order_.splice(order_.begin(), order_, found->second);
  ++hits_;
  return found->second->features;
}

void VisionFeatureCache::insert(const Sha256Digest& key, std::shared_ptr<const VisualFeatures> features) {
  const std::uint64_t size = features->data.size() * sizeof(float) + sizeof(Entry);
  std::lock_guard lock(mutex_);
  if (size > capacity_ || index_.count(key) != 0) return;
  while (bytes_ + size > capacity_ && !order_.empty()) {
    bytes_ -= order_.back().bytes;
    index_.erase(order_.back().key);
    order_.pop_back();
  }
  order_.push_front(Entry{key, std::move(features), size});
  index_[key] = order_.begin();
  bytes_ += size;
}

std::uint64_t VisionFeatureCache::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

std::int64_t VisionFeatureCache::hits() const {
  std::lock_guard lock(mutex_);
  return hits_;
}

}  // namespace q3vl
