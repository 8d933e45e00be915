#include "text/bpe.h"

#include "text/utf8.h"

namespace q3vl::tokenizer_internal {

ByteLevelAlphabet::ByteLevelAlphabet() {
  byte_of_code_point_.fill(-1);
  std::uint32_t next_extra = 256;
  for (std::uint32_t byte = 0; byte < 256; ++byte) {
    const bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE;
    const std::uint32_t code_point = printable ? byte : next_extra++;
    byte_of_code_point_[code_point] = static_cast<std::int16_t>(byte);
  }
}

std::string ByteLevelAlphabet::token_bytes(std::string_view token, std::vector<std::uint32_t>& scratch) const {
  if (!utf8::code_points(token, scratch)) return std::string(token);
  std::string bytes;
  bytes.reserve(scratch.size());
  for (const std::uint32_t code_point : scratch) {
    if (code_point >= byte_of_code_point_.size() || byte_of_code_point_[code_point] < 0) {
      return std::string(token);
    }
    bytes.push_back(static_cast<char>(byte_of_code_point_[code_point]));
  }
  return bytes;
}

// HF's BPE word merge: every adjacent pair with a merge rule goes into a min-heap keyed by
// (rank, position); the top is applied unless stale (the pair there no longer yields the same
// token), and the new neighbour pairs are pushed. Applying one merge at a time this way, rather
// than all occurrences of the best pair at once, is what HF does; the results agree in practice
// but this is the one that is exact.
void merge_word(std::string_view word, const ByteTokenIds& byte_ids, const MergeTable& merges,
                std::vector<std::int64_t>& ids, BpeScratch& scratch) {
  using Symbol = BpeScratch::Symbol;
  using Candidate = BpeScratch::Candidate;
  auto& symbols = scratch.symbols;
  auto& heap = scratch.heap;
  symbols.clear();
  heap.clear();
  for (const char byte : word) {
    const std::int32_t id = byte_ids[static_cast<unsigned char>(byte)];
    if (id < 0) continue;  // no byte token and no unk token: HF drops the byte
    const auto index = static_cast<std::int32_t>(symbols.size());
    symbols.push_back(Symbol{id, index - 1, index + 1, true});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  // std heap functions build a max-heap: "greater" means later rank, then later position.
  const auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  const auto push_pair = [&](std::int32_t pos) {
    if (pos < 0 || symbols[pos].next < 0) return;
    const std::int32_t next = symbols[pos].next;
    if (const MergeRule* rule = merges.find(symbols[pos].id, symbols[next].id)) {
      heap.push_back(Candidate{rule->rank, pos, rule->merged_id});
      std::push_heap(heap.begin(), heap.end(), later);
    }
  };
  for (std::int32_t pos = 0; pos + 1 < static_cast<std::int32_t>(symbols.size()); ++pos) push_pair(pos);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const MergeRule* rule = merges.find(left.id, right.id);
    if (rule == nullptr || rule->merged_id != top.merged_id) continue;  // stale entry
    left.id = top.merged_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    push_pair(left.prev);
    push_pair(top.pos);
  }
  for (const Symbol& symbol : symbols) {
    if (symbol.alive) ids.push_back(symbol.id);
  }
}

}  // namespace q3vl::tokenizer_internal
