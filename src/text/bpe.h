#pragma once
// Byte-level BPE as Hugging Face's tokenizers does it (internal to the tokenizer): the byte
// alphabet of token strings, the merge table, the merge of one word, and the cache of merged words.
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace q3vl::tokenizer_internal {

// ByteLevel: GPT-2's bytes_to_unicode. Printable bytes stand for themselves; the 68 others
// (controls, space, DEL, NBSP, soft hyphen...) take code points 256, 257, ... in byte order.
class ByteLevelAlphabet {
 public:
  ByteLevelAlphabet();

  // The bytes a token string stands for. Like HF's ByteLevel decoder, a token with any character
  // outside the alphabet stands for its own UTF-8 text.
  std::string token_bytes(std::string_view token, std::vector<std::uint32_t>& scratch) const;

 private:
  std::array<std::int16_t, 256 + 68> byte_of_code_point_{};
};

// BPE merge table: (left id, right id) -> (rank, merged id), open addressing on one 64-bit key.
struct MergeRule {
  std::uint32_t rank;
  std::int32_t merged_id;
};

class MergeTable {
 public:
  void reserve(std::size_t count) {
    std::size_t capacity = 16;
    while (capacity < count * 2) capacity *= 2;
    slots_.assign(capacity, Slot{kEmptyKey, {}});
    mask_ = capacity - 1;
  }

  // A later duplicate replaces the earlier one, as HF's HashMap collect does.
  void insert_or_assign(std::int32_t left, std::int32_t right, MergeRule rule) {
    const std::uint64_t key = make_key(left, right);
    for (std::size_t slot = hash(key);; slot = (slot + 1) & mask_) {
      if (slots_[slot].key == kEmptyKey || slots_[slot].key == key) {
        slots_[slot] = Slot{key, rule};
        return;
      }
    }
  }

  const MergeRule* find(std::int32_t left, std::int32_t right) const {
    const std::uint64_t key = make_key(left, right);
    for (std::size_t slot = hash(key);; slot = (slot + 1) & mask_) {
      if (slots_[slot].key == key) return &slots_[slot].rule;
      if (slots_[slot].key == kEmptyKey) return nullptr;
    }
  }

 private:
  static constexpr std::uint64_t kEmptyKey = ~std::uint64_t{0};
  struct Slot {
    std::uint64_t key;
    MergeRule rule;
  };
  static std::uint64_t make_key(std::int32_t left, std::int32_t right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
  }
  std::size_t hash(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 32) & mask_;
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
};

// The single-byte tokens by byte, -1 where missing.
using ByteTokenIds = std::array<std::int32_t, 256>;

// Scratch buffers reused across the words of one encode() call.
struct BpeScratch {
  struct Symbol {
    std::int32_t id;
    std::int32_t prev;
    std::int32_t next;
    bool alive;
  };
  struct Candidate {
    std::uint32_t rank;
    std::int32_t pos;
    std::int32_t merged_id;
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

// Appends the ids of `word` (raw bytes) after HF's BPE merges.
void merge_word(std::string_view word, const ByteTokenIds& byte_ids, const MergeTable& merges,
                std::vector<std::int64_t>& ids, BpeScratch& scratch);

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

// BPE results by word, shared by all callers (and threads); once full it stops growing, as HF's does.
class WordCache {
 public:
  static constexpr std::size_t kMaxWordBytes = 256;
  static constexpr std::size_t kMaxEntries = 1 << 17;

  bool append(std::string_view word, std::vector<std::int64_t>& ids) {
    std::shared_lock lock(mutex_);
    const auto it = entries_.find(word);
    if (it == entries_.end()) return false;
    ids.insert(ids.end(), it->second.begin(), it->second.end());
    return true;
  }

  void insert(std::string_view word, std::span<const std::int64_t> ids) {
    // Never wait for the lock: a missed insert only costs a later recomputation.
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock() || entries_.size() >= kMaxEntries) return;
    std::vector<std::int32_t> stored(ids.size());
    std::transform(ids.begin(), ids.end(), stored.begin(), [](std::int64_t id) { return static_cast<std::int32_t>(id); });
    entries_.try_emplace(std::string(word), std::move(stored));
  }

 private:
  std::shared_mutex mutex_;
  std::unordered_map<std::string, std::vector<std::int32_t>, StringHash, std::equal_to<>> entries_;
};

}  // namespace q3vl::tokenizer_internal
