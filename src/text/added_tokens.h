#pragma once
// Added tokens (internal to the tokenizer): cut out of the text before anything else, as whole-string
// matches, leftmost then longest (HF's Aho-Corasick LeftmostLongest).
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace q3vl::tokenizer_internal {

class AddedTokenMatcher {
 public:
  void add(std::string content, std::int32_t id) {
    if (content.empty()) return;
    auto& candidates = by_first_byte_[static_cast<unsigned char>(content[0])];
    candidates.push_back({std::move(content), id});
    // Longest first, so the first hit at a position is the longest; stable keeps file order.
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const Entry& a, const Entry& b) { return a.content.size() > b.content.size(); });
    empty_ = false;
  }

  bool empty() const { return empty_; }

  // Calls on_text(piece) for the text between matches and on_token(id) for each match.
  template <typename OnText, typename OnToken>
  void split(std::string_view text, OnText&& on_text, OnToken&& on_token) const {
    if (empty_) {
      if (!text.empty()) on_text(text);
      return;
    }
    std::size_t piece_start = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
      const Entry* match = nullptr;
      for (const Entry& entry : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
        if (text.compare(pos, entry.content.size(), entry.content) == 0) {
          match = &entry;
          break;
        }
      }
      if (match == nullptr) {
        ++pos;
        continue;
      }
      if (pos > piece_start) on_text(text.substr(piece_start, pos - piece_start));
      on_token(match->id);
      pos += match->content.size();
      piece_start = pos;
    }
    if (piece_start < text.size()) on_text(text.substr(piece_start));
  }

 private:
  struct Entry {
    std::string content;
    std::int32_t id;
  };
  std::array<std::vector<Entry>, 256> by_first_byte_;
  bool empty_ = true;
};

}  // namespace q3vl::tokenizer_internal
