#pragma once
// The per-sequence half of the decoder: keys and values of every layer, in buffers bound as both
// GroupQueryAttention's past and present so it appends in place.
//
// Sequences that decode together live in one KvPool: per layer a key and a value tensor
// [rows, kv_heads, capacity, head_dim], a row per sequence, so one decoder step can bind the rows
// of several sequences as one batch. A sequence alone (q3vl run) gets a pool of one row. Capacity
// grows by doubling, for all rows at once, up to the pool's token limit plus one spare position: a
// batched step feeds rows that sit it out a placeholder token written just past their last one.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace q3vl {

struct KvLayout {
  std::int64_t layers = 0, kv_heads = 0, head_dim = 0;
  std::size_t element_bytes = 4;  // float32 or float16, the model's
  std::size_t bytes_per_token() const {
    return static_cast<std::size_t>(2 * layers * kv_heads * head_dim) * element_bytes;
  }
};

class KvPool {
 public:
  // Throws InvalidInput if rows or max_tokens is not positive.
  KvPool(const KvLayout& layout, std::int64_t rows, std::int64_t max_tokens);

  const KvLayout& layout() const { return layout_; }
  std::int64_t rows() const { return rows_; }
  std::int64_t max_tokens() const { return max_tokens_; }  // per row
  std::int64_t capacity() const { return capacity_; }      // positions per row the buffers hold now
  std::size_t allocated_bytes() const;

  // A free row, or -1 when all are taken. Thread-safe.
  std::int64_t acquire_row();
  void release_row(std::int64_t row);
  std::int64_t rows_in_use() const;

  std::int64_t cached(std::int64_t row) const { return cached_[static_cast<std::size_t>(row)].load(); }
  void set_cached(std::int64_t row, std::int64_t tokens) { cached_[static_cast<std::size_t>(row)].store(tokens); }

  // Makes every row hold at least `positions` (at most max_tokens + 1), keeping what they hold.
  // Only from the thread that runs the decoder on this pool.
  void reserve(std::int64_t positions);
  // Tensor `index` (2 * layer + 0 for keys, + 1 for values) from `row` on.
  std::uint8_t* tensor(std::size_t index, std::int64_t row);
  std::size_t row_bytes() const;  // one row of one tensor
  // Copies the first `tokens` positions of row `from` into row `to` (a shared prompt prefix).
  // Only from the thread that runs the decoder on this pool.
  void copy_prefix(std::int64_t from, std::int64_t to, std::int64_t tokens);

 private:
  KvLayout layout_;
  std::int64_t rows_ = 0, max_tokens_ = 0, capacity_ = 0;
  std::vector<std::vector<std::uint8_t>> tensors_;  // per layer: key, value
  std::vector<std::atomic<std::int64_t>> cached_;   // per row
  mutable std::mutex rows_mutex_;
  std::vector<bool> taken_;
};

// One sequence: a row of a pool, released when the cache goes.
class KvCache {
 public:
  KvCache() = default;
  // Takes a free row of `pool`; throws Error if none is free.
  KvCache(std::shared_ptr<KvPool> pool, std::int64_t context_length);
  ~KvCache();
  KvCache(KvCache&& other) noexcept;
  KvCache& operator=(KvCache&& other) noexcept;

  std::int64_t cached_tokens() const { return pool_ ? pool_->cached(row_) : 0; }
  std::int64_t context_length() const { return context_length_; }
  // Forgets every cached token from `tokens` on (a later turn that diverges from the cache).
  void truncate(std::int64_t tokens);
  void reset() { truncate(0); }
  // Bytes this sequence's share of the pool holds now.
  std::size_t allocated_bytes() const;

  KvPool& pool() const { return *pool_; }
  const std::shared_ptr<KvPool>& shared_pool() const { return pool_; }
  std::int64_t row() const { return row_; }

 private:
  void release();

  std::shared_ptr<KvPool> pool_;
  std::int64_t row_ = -1;
  std::int64_t context_length_ = 0;
};

}  // namespace q3vl
