#include "engine/json_token_mask.h"

#include <algorithm>
#include <utility>

namespace q3vl {
namespace {

// How a token's bytes read inside a JSON string that is between characters.
enum class StringUse { Plain, Never, Simulate };

// Plain: text without '"', '\\' or control bytes, in valid UTF-8 whose last character may be cut
// short (`characters` counts it); Never: it cannot continue such a string (a stray continuation
// byte, bytes UTF-8 never uses); Simulate: it holds a quote, backslash or control byte (the string
// may end or escape inside it), so only the matcher can tell.
StringUse string_use(const std::string& bytes, std::int32_t& characters) {
  characters = 0;
  bool never = false;
  for (std::size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c < 0x20 || c == '"' || c == '\\') return StringUse::Simulate;
    if (never) {
      ++i;
      continue;
    }
    const std::size_t length = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (length == 0) {
      never = true;  // still read on: a later quote makes it a token to simulate
      continue;
    }
    for (std::size_t k = 1; k < length && i + k < bytes.size(); ++k) {
      const auto next = static_cast<unsigned char>(bytes[i + k]);
      const bool in_range = k > 1 ? (next & 0xC0) == 0x80
                                  : (c == 0xE0 ? next >= 0xA0 && next <= 0xBF
                                     : c == 0xED ? next >= 0x80 && next <= 0x9F
                                     : c == 0xF0 ? next >= 0x90 && next <= 0xBF
                                     : c == 0xF4 ? next >= 0x80 && next <= 0x8F
                                                 : (next & 0xC0) == 0x80);
      if (!in_range) never = true;
    }
    ++characters;
    i += length;
  }
  return never ? StringUse::Never : StringUse::Plain;
}

}  // namespace

JsonTokenMask::JsonTokenMask(const Tokenizer& tokenizer) : vocab_(static_cast<std::size_t>(tokenizer.vocab_size())) {
  trie_.emplace_back();
  bytes_.resize(vocab_);
  for (std::size_t id = 0; id < vocab_; ++id) {
    if (tokenizer.is_special(static_cast<std::int64_t>(id))) continue;
    std::string bytes = tokenizer.bytes_of(static_cast<std::int64_t>(id));
    if (bytes.empty()) continue;
    std::size_t lead = 0;
    while (lead < bytes.size() && lead < 4 && (static_cast<unsigned char>(bytes[lead]) & 0xC0) == 0x80) ++lead;
    if (lead <= 3) {
      Group& group = groups_[lead];
      std::int32_t characters = 0;
      switch (string_use(bytes.substr(lead), characters)) {
        case StringUse::Plain:
          group.plain.push_back(static_cast<std::int32_t>(id));
          group.plain_chars.push_back(characters);
          group.plain_first.push_back(static_cast<std::uint8_t>(bytes[0]));
          break;
        case StringUse::Simulate: group.simulate.push_back(static_cast<std::int32_t>(id)); break;
        case StringUse::Never: break;
      }
    }
    std::int32_t node = 0;
    for (char c : bytes) {
      const auto byte = static_cast<unsigned char>(c);
      std::int32_t child = trie_[static_cast<std::size_t>(node)].first_child;
      while (child >= 0 && trie_[static_cast<std::size_t>(child)].byte != byte) child = trie_[static_cast<std::size_t>(child)].next_sibling;
      if (child < 0) {
        Node added;
        added.byte = byte;
        added.next_sibling = trie_[static_cast<std::size_t>(node)].first_child;
        child = static_cast<std::int32_t>(trie_.size());
        trie_.push_back(added);
        trie_[static_cast<std::size_t>(node)].first_child = child;
      }
      node = child;
    }
    trie_[static_cast<std::size_t>(node)].token = static_cast<std::int32_t>(id);
    bytes_[id] = std::move(bytes);
  }
}

std::int64_t JsonTokenMask::byte_token(unsigned char byte) const {
  for (std::int32_t child = trie_[0].first_child; child >= 0; child = trie_[static_cast<std::size_t>(child)].next_sibling) {
    if (trie_[static_cast<std::size_t>(child)].byte == byte) return trie_[static_cast<std::size_t>(child)].token;
  }
  return -1;
}

void JsonTokenMask::compute(const JsonMatcher& matcher, std::span<const std::int64_t> eos, std::vector<std::uint8_t>& allowed) const {
  allowed.assign(vocab_, 0);
  if (matcher.complete()) {
    for (std::int64_t id : eos) {
      if (id >= 0 && std::cmp_less(id, vocab_)) allowed[static_cast<std::size_t>(id)] = 1;
    }
    return;
  }
  std::int64_t room = -1;
  int pending = 0;
  std::uint8_t low = 0x80, high = 0xBF;
  if (matcher.in_string(room, pending, low, high)) {
    // Tokens that finish the cut character (if any) and go on with plain text continue the
    // string whatever it holds; the others are tried one by one.
    const Group& group = groups_[pending];
    for (std::size_t i = 0; i < group.plain.size(); ++i) {
      if (pending > 0 && (group.plain_first[i] < low || group.plain_first[i] > high)) continue;
      if (room < 0 || group.plain_chars[i] <= room) allowed[static_cast<std::size_t>(group.plain[i])] = 1;
    }
    JsonMatcher scratch = matcher;  // assigned, not constructed, per token: its buffers are reused
    for (std::int32_t id : group.simulate) {
      scratch = matcher;
      bool taken = true;
      for (char c : bytes_[static_cast<std::size_t>(id)]) {
        if (!scratch.feed(static_cast<unsigned char>(c))) {
          taken = false;
          break;
        }
      }
      if (taken) allowed[static_cast<std::size_t>(id)] = 1;
    }
    return;
  }
  // Depth first through the trie, one matcher per live branch.
  std::vector<std::pair<std::int32_t, JsonMatcher>> branches;
  branches.emplace_back(0, matcher);
  while (!branches.empty()) {
    auto [node, state] = std::move(branches.back());
    branches.pop_back();
    for (std::int32_t child = trie_[static_cast<std::size_t>(node)].first_child; child >= 0;
         child = trie_[static_cast<std::size_t>(child)].next_sibling) {
      const Node& next = trie_[static_cast<std::size_t>(child)];
      JsonMatcher advanced = state;
      if (!advanced.feed(next.byte)) continue;
      if (next.token >= 0) allowed[static_cast<std::size_t>(next.token)] = 1;
      if (next.first_child >= 0) branches.emplace_back(child, std::move(advanced));
    }
  }
}

}  // namespace q3vl
