#pragma once
// Visual features of recently seen images and videos, shared by every conversation of a Model and
// keyed by the SHA-256 of their content (pixels at the encoded size, or a clip's bytes and sampled
// frames): the same image sent again, by any client, as another data URL, is not encoded again.
// Bounded in bytes, least recently used first out. Thread-safe.
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "engine/vision_encoder.h"
#include "util/sha256.h"

namespace q3vl {

class VisionFeatureCache {
 public:
  explicit VisionFeatureCache(std::uint64_t capacity_bytes) : capacity_(capacity_bytes) {}

  // The features stored for this content, or null.
  std::shared_ptr<const VisualFeatures> find(const Sha256Digest& key);
  // Stores them (an item larger than the whole cache is not stored), evicting the least recently used.
  void insert(const Sha256Digest& key, std::shared_ptr<const VisualFeatures> features);

  std::uint64_t bytes() const;
  std::int64_t hits() const;

 private:
  struct KeyHash {
    std::size_t operator()(const Sha256Digest& d) const noexcept;
  };
  struct Entry {
    Sha256Digest key;
    std::shared_ptr<const VisualFeatures> features;
    std::uint64_t bytes = 0;
  };

  mutable std::mutex mutex_;
  std::uint64_t capacity_;
  std::uint64_t bytes_ = 0;
  std::int64_t hits_ = 0;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<Sha256Digest, std::list<Entry>::iterator, KeyHash> index_;
};

}  // namespace q3vl
