#include "engine/kv_cache.h"

#include <algorithm>
#include <string>

#include "q3vl/error.h"

namespace q3vl {

KvPool::KvPool(const KvLayout& layout, std::int64_t rows, std::int64_t max_tokens)
    : layout_(layout), rows_(rows), max_tokens_(max_tokens),
      tensors_(static_cast<std::size_t>(2 * layout.layers)), cached_(static_cast<std::size_t>(std::max<std::int64_t>(rows, 0))),
      taken_(static_cast<std::size_t>(std::max<std::int64_t>(rows, 0)), false) {
  if (rows <= 0) throw InvalidInput("a KV cache needs at least one sequence, not " + std::to_string(rows));
  if (max_tokens <= 0) throw InvalidInput("context length must be positive");
  for (auto& tokens : cached_) tokens.store(0);
}

std::size_t KvPool::row_bytes() const {
  return static_cast<std::size_t>(layout_.kv_heads * capacity_ * layout_.head_dim) * layout_.element_bytes;
}

std::size_t KvPool::allocated_bytes() const {
  std::size_t total = 0;
  for (const auto& tensor : tensors_) total += tensor.size();
  return total;
}

std::int64_t KvPool::acquire_row() {
  std::lock_guard lock(rows_mutex_);
  for (std::size_t row = 0; row < taken_.size(); ++row) {
    if (taken_[row]) continue;
    taken_[row] = true;
    cached_[row].store(0);
    return static_cast<std::int64_t>(row);
  }
  return -1;
}

void KvPool::release_row(std::int64_t row) {
  std::lock_guard lock(rows_mutex_);
  taken_.at(static_cast<std::size_t>(row)) = false;
  cached_[static_cast<std::size_t>(row)].store(0);
}

std::int64_t KvPool::rows_in_use() const {
  std::lock_guard lock(rows_mutex_);
  return std::count(taken_.begin(), taken_.end(), true);
}

void KvPool::reserve(std::int64_t positions) {
  if (positions <= capacity_) return;
  if (positions > max_tokens_ + 1) {
    throw Error("internal: " + std::to_string(positions) + " KV positions asked of a cache of " + std::to_string(max_tokens_));
  }
  std::int64_t capacity = std::max<std::int64_t>(capacity_, 256);
  while (capacity < positions) capacity *= 2;
  capacity = std::min(capacity, max_tokens_ + 1);
  const std::size_t position_bytes = static_cast<std::size_t>(layout_.head_dim) * layout_.element_bytes;
  const std::size_t old_head = static_cast<std::size_t>(capacity_) * position_bytes;
  const std::size_t new_head = static_cast<std::size_t>(capacity) * position_bytes;
  for (auto& tensor : tensors_) {
    std::vector<std::uint8_t> grown(static_cast<std::size_t>(rows_ * layout_.kv_heads) * new_head, 0);
    for (std::int64_t head = 0; capacity_ > 0 && head < rows_ * layout_.kv_heads; ++head) {
      std::copy_n(tensor.begin() + static_cast<std::ptrdiff_t>(head * old_head), old_head,
                  grown.begin() + static_cast<std::ptrdiff_t>(head * new_head));
    }
    tensor = std::move(grown);
  }
  capacity_ = capacity;
}

std::uint8_t* KvPool::tensor(std::size_t index, std::int64_t row) {
  return tensors_.at(index).data() + static_cast<std::size_t>(row) * row_bytes();
}

void KvPool::copy_prefix(std::int64_t from, std::int64_t to, std::int64_t tokens) {
  if (from == to || tokens <= 0) return;
  if (tokens > capacity_) throw Error("internal: copying more KV positions than the cache holds");
  const std::size_t position_bytes = static_cast<std::size_t>(layout_.head_dim) * layout_.element_bytes;
  const std::size_t head_bytes = static_cast<std::size_t>(capacity_) * position_bytes;
  for (std::size_t index = 0; index < tensors_.size(); ++index) {
    for (std::int64_t head = 0; head < layout_.kv_heads; ++head) {
      const std::uint8_t* source = tensor(index, from) + static_cast<std::size_t>(head) * head_bytes;
      std::copy_n(source, static_cast<std::size_t>(tokens) * position_bytes, tensor(index, to) + static_cast<std::size_t>(head) * head_bytes);
    }
  }
}

KvCache::KvCache(std::shared_ptr<KvPool> pool, std::int64_t context_length)
    : pool_(std::move(pool)), context_length_(context_length) {
  if (context_length <= 0) throw InvalidInput("context length must be positive");
  if (context_length > pool_->max_tokens()) {
    throw InvalidInput("a context of " + std::to_string(context_length) + " tokens is more than the KV cache allows per sequence (" +
                       std::to_string(pool_->max_tokens()) + ")");
  }
  row_ = pool_->acquire_row();
  if (row_ < 0) {
    throw Error("the KV cache has no free sequence slot (all " + std::to_string(pool_->rows()) + " are in use)");
  }
}

KvCache::~KvCache() { release(); }

KvCache::KvCache(KvCache&& other) noexcept
    : pool_(std::move(other.pool_)), row_(other.row_), context_length_(other.context_length_) {
  other.row_ = -1;
}

KvCache& KvCache::operator=(KvCache&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::move(other.pool_);
    row_ = other.row_;
    context_length_ = other.context_length_;
    other.row_ = -1;
  }
  return *this;
}

void KvCache::release() {
  if (pool_ && row_ >= 0) pool_->release_row(row_);
  pool_.reset();
  row_ = -1;
}

void KvCache::truncate(std::int64_t tokens) {
  if (tokens < 0 || tokens > cached_tokens()) {
    throw Error("cannot truncate the KV cache to " + std::to_string(tokens) + " tokens");
  }
  // GQA reads only the first seqlens_k + 1 positions; the rest is overwritten later.
  if (pool_) pool_->set_cached(row_, tokens);
}

std::size_t KvCache::allocated_bytes() const {
  return pool_ ? pool_->allocated_bytes() / static_cast<std::size_t>(pool_->rows()) : 0;
}

}  // namespace q3vl
