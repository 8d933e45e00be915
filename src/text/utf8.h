#pragma once
// UTF-8 as the tokenizer needs it (internal to text/): sequence classification by Unicode's
// Table 3-7, lossy decoding the way Rust's from_utf8_lossy (and Python's errors="replace") does
// it, validation with a message naming the first bad byte, and code point range lookups.
// The per-character functions are inline: they run in the tokenizer's inner loops.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace q3vl::utf8 {

enum class Status { kValid, kInvalid, kTruncated };

struct Sequence {
  Status status;
  // kValid: the sequence length; kInvalid: the maximal invalid subpart (one U+FFFD replaces
  // it, as Rust's from_utf8_lossy and Python's errors="replace" do); kTruncated: the bytes left.
  std::size_t length;
};

// Classifies the sequence starting at bytes[pos] (Unicode Table 3-7: no overlong forms, no
// surrogates, nothing above U+10FFFF).
inline Sequence next_sequence(std::string_view bytes, std::size_t pos) {
  const auto lead = static_cast<unsigned char>(bytes[pos]);
  if (lead < 0x80) return {Status::kValid, 1};
  std::size_t length = 0;
  unsigned char low = 0x80;  // range of the second byte; later bytes are always 80..BF
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead == 0xE0) {
    length = 3;
    low = 0xA0;
  } else if (lead == 0xED) {
    length = 3;
    high = 0x9F;
  } else if (lead >= 0xE1 && lead <= 0xEF) {
    length = 3;
  } else if (lead == 0xF0) {
    length = 4;
    low = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    length = 4;
  } else if (lead == 0xF4) {
    length = 4;
    high = 0x8F;
  } else {
    return {Status::kInvalid, 1};
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (pos + i >= bytes.size()) return {Status::kTruncated, i};
    const auto byte = static_cast<unsigned char>(bytes[pos + i]);
    if (byte < low || byte > high) return {Status::kInvalid, i};
    low = 0x80;
    high = 0xBF;
  }
  return {Status::kValid, length};
}

// The code point of the valid `length`-byte sequence at text[pos].
inline std::uint32_t decode_code_point(std::string_view text, std::size_t pos, std::size_t length) {
  auto value = static_cast<std::uint32_t>(static_cast<unsigned char>(text[pos]));
  if (length > 1) value &= 0x7Fu >> length;
  for (std::size_t i = 1; i < length; ++i) value = (value << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3Fu);
  return value;
}

inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// Appends `bytes` to `out` as valid UTF-8, each maximal invalid subpart replaced by U+FFFD.
// Unless `final`, an incomplete character at the end is left alone: returns the bytes used.
std::size_t append_lossy(std::string_view bytes, bool final, std::string& out);

// Throws InvalidInput unless `text` is valid UTF-8; `what` names the text in the message.
void check_valid(std::string_view text, std::string_view what = "text to encode");

// Decodes well-formed UTF-8 into code points; false if `text` is not well formed.
bool code_points(std::string_view text, std::vector<std::uint32_t>& out);

// Inclusive code point ranges, sorted and disjoint.
using CodePointRange = std::pair<std::uint32_t, std::uint32_t>;

inline bool in_ranges(std::span<const CodePointRange> ranges, std::uint32_t code_point) {
  const auto after = std::upper_bound(ranges.begin(), ranges.end(), code_point,
                                      [](std::uint32_t value, const CodePointRange& range) { return value < range.first; });
  return after != ranges.begin() && code_point <= std::prev(after)->second;
}

}  // namespace q3vl::utf8
