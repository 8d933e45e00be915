#include "text/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>
#include <utility>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"

namespace q3vl {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// UTF-8

enum class Utf8Status { kValid, kInvalid, kTruncated };

struct Utf8Sequence {
  Utf8Status status;
  // kValid: the sequence length; kInvalid: the maximal invalid subpart (one U+FFFD replaces
  // it, as Rust's from_utf8_lossy and Python's errors="replace" do); kTruncated: the bytes left.
  std::size_t length;
};

// Classifies the sequence starting at bytes[pos] (Unicode Table 3-7: no overlong forms, no
// surrogates, nothing above U+10FFFF).
Utf8Sequence next_utf8_sequence(std::string_view bytes, std::size_t pos) {
  const auto lead = static_cast<unsigned char>(bytes[pos]);
  if (lead < 0x80) return {Utf8Status::kValid, 1};
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
    return {Utf8Status::kInvalid, 1};
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (pos + i >= bytes.size()) return {Utf8Status::kTruncated, i};
    const auto byte = static_cast<unsigned char>(bytes[pos + i]);
    if (byte < low || byte > high) return {Utf8Status::kInvalid, i};
    low = 0x80;
    high = 0xBF;
  }
  return {Utf8Status::kValid, length};
}

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// Appends `bytes` to `out` as valid UTF-8, each maximal invalid subpart replaced by U+FFFD.
// Unless `final`, an incomplete character at the end is left alone: returns the bytes used.
std::size_t append_utf8_lossy(std::string_view bytes, bool final, std::string& out) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    std::size_t ascii_end = pos;
    while (ascii_end < bytes.size() && static_cast<unsigned char>(bytes[ascii_end]) < 0x80) ++ascii_end;
    out.append(bytes.substr(pos, ascii_end - pos));
    pos = ascii_end;
    if (pos == bytes.size()) break;
    const Utf8Sequence sequence = next_utf8_sequence(bytes, pos);
    if (sequence.status == Utf8Status::kValid) {
      out.append(bytes.substr(pos, sequence.length));
    } else if (sequence.status == Utf8Status::kTruncated && !final) {
      return pos;  // the next token may complete it
    } else {
      out.append(kReplacementCharacter);
    }
    pos += sequence.length;
  }
  return bytes.size();
}

// Throws unless `text` is valid UTF-8; `what` names the text in the message.
void check_utf8(std::string_view text, std::string_view what = "text to encode") {
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Utf8Sequence sequence = next_utf8_sequence(text, pos);
    if (sequence.status != Utf8Status::kValid) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      const auto byte = static_cast<unsigned char>(text[pos]);
      throw InvalidInput(std::string(what) + " is not valid UTF-8: " +
                         std::string(sequence.status == Utf8Status::kTruncated ? "truncated" : "bad") +
                         " sequence at byte offset " + std::to_string(pos) + " (0x" + kHex[byte >> 4] +
                         kHex[byte & 15] + ")");
    }
    pos += sequence.length;
  }
}

// The code point of the valid `length`-byte sequence at text[pos].
std::uint32_t decode_code_point(std::string_view text, std::size_t pos, std::size_t length) {
  auto value = static_cast<std::uint32_t>(static_cast<unsigned char>(text[pos]));
  if (length > 1) value &= 0x7Fu >> length;
  for (std::size_t i = 1; i < length; ++i) value = (value << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3Fu);
  return value;
}

// Decodes well-formed UTF-8 into code points; false if `text` is not well formed.
bool utf8_code_points(std::string_view text, std::vector<std::uint32_t>& code_points) {
  code_points.clear();
  std::size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Sequence sequence = next_utf8_sequence(text, pos);
    if (sequence.status != Utf8Status::kValid) return false;
    code_points.push_back(decode_code_point(text, pos, sequence.length));
    pos += sequence.length;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// ByteLevel: GPT-2's bytes_to_unicode. Printable bytes stand for themselves; the 68 others
// (controls, space, DEL, NBSP, soft hyphen...) take code points 256, 257, ... in byte order.

class ByteLevelAlphabet {
 public:
  ByteLevelAlphabet() {
    byte_of_code_point_.fill(-1);
    std::uint32_t next_extra = 256;
    for (std::uint32_t byte = 0; byte < 256; ++byte) {
      const bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE;
      const std::uint32_t code_point = printable ? byte : next_extra++;
      byte_of_code_point_[code_point] = static_cast<std::int16_t>(byte);
    }
  }

  // The bytes a token string stands for. Like HF's ByteLevel decoder, a token with any character
  // outside the alphabet stands for its own UTF-8 text.
  std::string token_bytes(std::string_view token, std::vector<std::uint32_t>& scratch) const {
    if (!utf8_code_points(token, scratch)) return std::string(token);
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

 private:
  std::array<std::int16_t, 256 + 68> byte_of_code_point_{};
};

// ---------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------
// Added tokens: whole-string matches, leftmost then longest (HF's Aho-Corasick LeftmostLongest).

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

// ---------------------------------------------------------------------------------------------
// PCRE2 and utf8proc handles

struct Pcre2CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct Pcre2MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
struct FreeDeleter {
  void operator()(void* pointer) const { std::free(pointer); }
};
using Pcre2Code = std::unique_ptr<pcre2_code, Pcre2CodeDeleter>;
using Pcre2MatchData = std::unique_ptr<pcre2_match_data, Pcre2MatchDataDeleter>;

// Oniguruma's \s (what HF's regexes run on) is exactly Unicode White_Space. PCRE2 10.42 also counts
// U+180E MONGOLIAN VOWEL SEPARATOR (White_Space before Unicode 6.3), which splits such text
// differently, so \s and \S are spelled out as explicit classes.
constexpr std::string_view kWhiteSpaceClassItems =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// Letters and numbers added in Unicode 15.0-16.0. HF's Oniguruma has Unicode 16 classes; PCRE2
// 10.42 (Debian 12) stops at Unicode 14, so \p{L} and \p{N} get these appended. Found by comparing
// both engines on every code point; the test checks all 1.1M code points against HF's classes
// (tests/fixtures/tokenizer/hf_unicode.json). A newer PCRE2 already has them: no harm.
using CodePointRange = std::pair<std::uint32_t, std::uint32_t>;
constexpr std::array<CodePointRange, 35> kNewerLetters = {{
    {0x1C89, 0x1C8A},   {0xA7CB, 0xA7CD},   {0xA7DA, 0xA7DC},   {0x105C0, 0x105F3}, {0x10D4A, 0x10D65},
    {0x10D6F, 0x10D85}, {0x10EC2, 0x10EC4}, {0x1123F, 0x11240}, {0x11380, 0x11389}, {0x1138B, 0x1138B},
    {0x1138E, 0x1138E}, {0x11390, 0x113B5}, {0x113B7, 0x113B7}, {0x113D1, 0x113D1}, {0x113D3, 0x113D3},
    {0x11BC0, 0x11BE0}, {0x11F02, 0x11F02}, {0x11F04, 0x11F10}, {0x11F12, 0x11F33}, {0x1342F, 0x1342F},
    {0x13441, 0x13446}, {0x13460, 0x143FA}, {0x16100, 0x1611D}, {0x16D40, 0x16D6C}, {0x18CFF, 0x18CFF},
    {0x1B132, 0x1B132}, {0x1B155, 0x1B155}, {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E4D0, 0x1E4EB},
    {0x1E5D0, 0x1E5ED}, {0x1E5F0, 0x1E5F0}, {0x2B739, 0x2B739}, {0x2EBF0, 0x2EE5D}, {0x31350, 0x323AF},
}};
constexpr std::array<CodePointRange, 10> kNewerNumbers = {{
    {0x10D40, 0x10D49}, {0x116D0, 0x116E3}, {0x11BF0, 0x11BF9}, {0x11F50, 0x11F59}, {0x16130, 0x16139},
    {0x16D70, 0x16D79}, {0x1CCF0, 0x1CCF9}, {0x1D2C0, 0x1D2D3}, {0x1E4F0, 0x1E4F9}, {0x1E5F1, 0x1E5FA},
}};

bool in_ranges(std::span<const CodePointRange> ranges, std::uint32_t code_point) {
  const auto after = std::upper_bound(ranges.begin(), ranges.end(), code_point,
                                      [](std::uint32_t value, const CodePointRange& range) { return value < range.first; });
  return after != ranges.begin() && code_point <= std::prev(after)->second;
}

std::string class_items(std::span<const CodePointRange> ranges) {
  std::string items;
  char buffer[40];
  for (const auto& [first, last] : ranges) {
    const int written = first == last ? std::snprintf(buffer, sizeof buffer, "\\x{%X}", first)
                                      : std::snprintf(buffer, sizeof buffer, "\\x{%X}-\\x{%X}", first, last);
    items.append(buffer, static_cast<std::size_t>(written));
  }
  return items;
}

// Whether `text` holds one of those newer letters or numbers (lead bytes E1, EA and F0 only).
bool has_newer_letter_or_number(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size(); ++pos) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    if (lead != 0xE1 && lead != 0xEA && lead != 0xF0) continue;
    const std::size_t length = next_utf8_sequence(text, pos).length;  // the text is valid UTF-8
    const std::uint32_t code_point = decode_code_point(text, pos, length);
    if (in_ranges(kNewerLetters, code_point) || in_ranges(kNewerNumbers, code_point)) return true;
  }
  return false;
}

// Rewrites an Oniguruma pattern for PCRE2 so both see the same classes: \s and \S spelled out,
// and with `newer_classes`, \p{L} and \p{N} extended to Unicode 16 (that costs half the regex
// speed, so it is used only on text that has such characters). The engines agree on the rest
// this tokenizer uses. Returns nullopt for \S, \P{L} or \P{N} inside a character class, which
// have no simple rewrite.
std::optional<std::string> onig_pattern_for_pcre2(std::string_view pattern, bool newer_classes) {
  std::string out;
  out.reserve(pattern.size() + 128);
  bool in_class = false;
  bool class_start = false;  // just after "[" or "[^", where "]" is a literal
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char escaped = pattern[++i];
      class_start = false;
      if (escaped == 's') {
        out += in_class ? std::string(kWhiteSpaceClassItems) : "[" + std::string(kWhiteSpaceClassItems) + "]";
      } else if (escaped == 'S') {
        if (in_class) return std::nullopt;
        out += "[^" + std::string(kWhiteSpaceClassItems) + "]";
      } else if (newer_classes && (escaped == 'p' || escaped == 'P') &&
                 (pattern.substr(i + 1, 3) == "{L}" || pattern.substr(i + 1, 3) == "{N}")) {
        const bool negated = escaped == 'P';
        const char property = pattern[i + 2];
        const std::string items = std::string("\\p{") + property + "}" +
                                  (property == 'L' ? class_items(kNewerLetters) : class_items(kNewerNumbers));
        i += 3;
        if (in_class) {
          if (negated) return std::nullopt;
          out += items;
        } else {
          out += (negated ? "[^" : "[") + items + "]";
        }
      } else {
        out += c;
        out += escaped;
      }
      continue;
    }
    out += c;
    if (!in_class) {
      if (c == '[') {
        in_class = true;
        class_start = true;
        if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      }
      continue;
    }
    if (c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      // A POSIX class such as [:alpha:] inside the set: copy it whole.
      const std::size_t end = pattern.find(":]", i + 2);
      if (end != std::string_view::npos) {
        out.append(pattern.substr(i + 1, end + 2 - (i + 1)));
        i = end + 1;
      }
    } else if (c == ']' && !class_start) {
      in_class = false;
    }
    class_start = false;
  }
  return out;
}

// Text whose code points are all below U+0300 (UTF-8 lead bytes below 0xCC) is already NFC: no
// character there has a decomposition that changes, and nothing follows that could combine.
bool may_change_under_nfc(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0xCC; });
}

// Characters HF's NFC does not know: its tables are Unicode 9 while utf8proc's are newer, so
// these combining marks (and the few new letters with compositions) would be reordered or composed
// by utf8proc but not by HF. To HF they are plain starters that never combine, so they are copied
// through and the text on each side normalized on its own, which gives what HF gives. Probed on
// every code point by tools/golden/gen_tokenizer_fixtures.py (hf_unicode.json lists them, and the
// encode fixtures put each one where a newer NFC would act).
constexpr std::array<CodePointRange, 57> kUnknownToHfNfc = {{
    {0x7FD, 0x7FD},     {0x897, 0x89F},     {0x8CA, 0x8D3},     {0x9FE, 0x9FE},     {0xC3C, 0xC3C},
    {0xD3B, 0xD3C},     {0xEBA, 0xEBA},     {0x1715, 0x1715},   {0x1ABF, 0x1ACE},   {0x1DF6, 0x1DFA},
    {0xA82C, 0xA82C},   {0x105C9, 0x105C9}, {0x105D2, 0x105D2}, {0x105DA, 0x105DA}, {0x105E4, 0x105E4},
    {0x10D24, 0x10D27}, {0x10D69, 0x10D6D}, {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50},
    {0x10F82, 0x10F85}, {0x11070, 0x11070}, {0x1133B, 0x1133B}, {0x11382, 0x11385}, {0x1138B, 0x1138B},
    {0x1138E, 0x1138E}, {0x11390, 0x11391}, {0x113C2, 0x113C2}, {0x113C5, 0x113C5}, {0x113C7, 0x113C8},
    {0x113CE, 0x113D0}, {0x1145E, 0x1145E}, {0x11839, 0x1183A}, {0x11935, 0x11935}, {0x11938, 0x11938},
    {0x1193D, 0x1193E}, {0x11943, 0x11943}, {0x119E0, 0x119E0}, {0x11A34, 0x11A34}, {0x11A47, 0x11A47},
    {0x11A99, 0x11A99}, {0x11D42, 0x11D42}, {0x11D44, 0x11D45}, {0x11D97, 0x11D97}, {0x11F41, 0x11F42},
    {0x1611E, 0x1611E}, {0x16121, 0x16129}, {0x1612F, 0x1612F}, {0x16D63, 0x16D63}, {0x16D67, 0x16D6A},
    {0x16FF0, 0x16FF1}, {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF},
    {0x1E4EC, 0x1E4EF}, {0x1E5EE, 0x1E5EF},
}};
constexpr std::uint32_t kFirstUnknownToHfNfc = 0x7FD;  // UTF-8 DF BD: lead bytes below 0xDF are all older
constexpr unsigned char kFirstUnknownToHfNfcLead = 0xDF;

bool unknown_to_hf_nfc(std::uint32_t code_point) {
  return code_point >= kFirstUnknownToHfNfc && in_ranges(kUnknownToHfNfc, code_point);
}

// Characters that are their own NFC, have combining class 0 and never compose with what precedes
// them (NFC_Quick_Check=Yes starters): NFC never looks across the boundary before one, so text
// made of them is copied and only the stretches around the others go through utf8proc. Just the
// common scripts; checked against Unicode 16 (no combining class, no change, never the second
// half of a composition). Everything below U+0300 is such a character too.
constexpr std::array<CodePointRange, 9> kNfcStableRanges = {{
    {0x400, 0x482},    // Cyrillic (U+0483..0489 are combining)
    {0x48A, 0x4FF},    //
    {0x3000, 0x3029},  // CJK symbols and punctuation (U+302A.. are combining)
    {0x3041, 0x3096},  // hiragana (the voicing marks U+3099/309A are combining)
    {0x30A1, 0x30FA},  // katakana
    {0x3400, 0x4DBF},  // CJK ideographs, extension A
    {0x4E00, 0x9FFF},  // CJK ideographs
    {0xAC00, 0xD7A3},  // Hangul syllables (a trailing jamo after one is not stable, so it is handled)
    {0xFF01, 0xFFEF},  // half- and fullwidth forms (compatibility decompositions only)
}};

// Whether the character at text[pos] is NFC-stable (see above); sets its byte length.
bool is_nfc_stable_at(std::string_view text, std::size_t pos, std::size_t& length) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  if (lead < 0x80) {
    length = 1;
    return true;
  }
  length = next_utf8_sequence(text, pos).length;  // the text is valid UTF-8
  if (lead < 0xCC) return true;                   // below U+0300
  const std::uint32_t code_point = decode_code_point(text, pos, length);
  return std::any_of(kNfcStableRanges.begin(), kNfcStableRanges.end(), [code_point](const auto& range) {
    return code_point >= range.first && code_point <= range.second;
  });
}

// Appends the NFC form of `text` (utf8proc) to `out`.
void append_nfc(std::string_view text, std::string& out) {
  if (!may_change_under_nfc(text)) {
    out.append(text);
    return;
  }
  utf8proc_uint8_t* output = nullptr;
  const utf8proc_ssize_t length =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &output, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  const std::unique_ptr<utf8proc_uint8_t, FreeDeleter> owned(output);
  if (length < 0) throw Error(std::string("NFC normalization failed: ") + utf8proc_errmsg(length));
  out.append(reinterpret_cast<const char*>(output), static_cast<std::size_t>(length));
}

// Appends NFC as HF computes it: utf8proc's, except that characters HF's tables lack stay inert.
void append_hf_nfc(std::string_view text, std::string& out) {
  std::size_t piece_start = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < kFirstUnknownToHfNfcLead) {
      ++pos;  // an older character, or a continuation byte of one
      continue;
    }
    const std::size_t length = next_utf8_sequence(text, pos).length;
    if (unknown_to_hf_nfc(decode_code_point(text, pos, length))) {
      append_nfc(text.substr(piece_start, pos - piece_start), out);
      out.append(text.substr(pos, length));
      piece_start = pos + length;
    }
    pos += length;
  }
  append_nfc(text.substr(piece_start), out);
}

// ---------------------------------------------------------------------------------------------
// BPE results by word, shared by all callers (and threads); once full it stops growing, as HF's does.

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

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

[[noreturn]] void bad(const std::filesystem::path& file, const std::string& what) {
  throw InvalidInput(file.string() + ": " + what);
}

const json& require(const json& object, const char* key, const std::filesystem::path& file, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end()) bad(file, where + " has no \"" + key + "\"");
  return *it;
}

// A flag that must be absent, null, false or an empty string for this implementation.
void require_unset(const json& object, const char* key, const std::filesystem::path& file, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return;
  if ((it->is_boolean() && !it->get<bool>()) || (it->is_string() && it->get<std::string>().empty())) return;
  bad(file, "unsupported tokenizer: " + where + "." + key + " = " + it->dump());
}

std::string json_string(const json& value, const std::filesystem::path& file, const std::string& where) {
  if (!value.is_string()) bad(file, where + " is not a string");
  return value.get<std::string>();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void require_valid_utf8(std::string_view text, std::string_view what) { check_utf8(text, what); }

struct Tokenizer::Impl {
  struct TokenInfo {
    std::string bytes;  // what decode() produces for it
    bool exists = false;
    bool special = false;
  };

  std::vector<TokenInfo> tokens;  // by id
  std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>> id_by_token;
  std::int64_t distinct_tokens = 0;
  std::array<std::int32_t, 256> byte_ids{};  // the single-byte tokens, -1 where missing
  MergeTable merges;
  AddedTokenMatcher raw_added_tokens;         // "normalized": false, matched on the raw text
  AddedTokenMatcher normalized_added_tokens;  // "normalized": true, matched after NFC
  bool nfc = false;
  Pcre2Code split_regex;        // the pre-tokenizer pattern with PCRE2's Unicode 14 classes
  Pcre2Code split_regex_newer;  // the same with Unicode 16 letters and numbers, for text that has them
  mutable WordCache cache;  // filled by the const encode(); locks internally

  std::string_view normalize(std::string_view text, std::string& storage) const;
  template <typename OnWord>
  void split_words(std::string_view text, pcre2_match_data* match, OnWord&& on_word) const;
  // One normalized piece between added tokens: words, then BPE per word.
  void encode_text(std::string_view text, std::vector<std::int64_t>& ids, pcre2_match_data* match,
                   BpeScratch& scratch) const;
  void encode_word(std::string_view word, std::vector<std::int64_t>& ids, BpeScratch& scratch) const;
  void merge_word(std::string_view word, std::vector<std::int64_t>& ids, BpeScratch& scratch) const;
};

// NFC as HF computes it, run only on the stretches where it can change something.
std::string_view Tokenizer::Impl::normalize(std::string_view text, std::string& storage) const {
  if (!nfc || !may_change_under_nfc(text)) return text;
  storage.clear();
  std::size_t copied = 0;         // text[0, copied) is in storage
  std::size_t last_boundary = 0;  // where the latest stable character starts
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t length = 1;
    if (is_nfc_stable_at(text, pos, length)) {
      last_boundary = pos;
      pos += length;
      continue;
    }
    // Something NFC may change: normalize from the last stable character up to the next one.
    std::size_t end = pos + length;
    while (end < text.size() && !is_nfc_stable_at(text, end, length)) end += length;
    storage.append(text.substr(copied, last_boundary - copied));
    append_hf_nfc(text.substr(last_boundary, end - last_boundary), storage);
    copied = last_boundary = pos = end;
  }
  storage.append(text.substr(copied));
  return storage;
}

// The pre-tokenizer regex, "Isolated": the matches and the gaps between them are all words.
template <typename OnWord>
void Tokenizer::Impl::split_words(std::string_view text, pcre2_match_data* match, OnWord&& on_word) const {
  const pcre2_code* regex = has_newer_letter_or_number(text) ? split_regex_newer.get() : split_regex.get();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t word_start = 0;
  std::size_t search_from = 0;
  while (search_from < text.size()) {
    // The text was checked (or produced by utf8proc) as valid UTF-8: skip PCRE2's own check.
    const int found = pcre2_match(regex, subject, text.size(), search_from, PCRE2_NO_UTF_CHECK, match, nullptr);
    if (found == PCRE2_ERROR_NOMATCH) break;
    if (found < 0) {
      std::array<PCRE2_UCHAR, 256> message{};
      pcre2_get_error_message(found, message.data(), message.size());
      throw Error(std::string("pre-tokenizer regex failed: ") + reinterpret_cast<const char*>(message.data()));
    }
    const PCRE2_SIZE* offsets = pcre2_get_ovector_pointer(match);
    const std::size_t begin = offsets[0];
    const std::size_t end = offsets[1];
    if (end == begin) {
      // An empty match splits nothing; step over one character (this pattern never matches empty).
      search_from = begin + 1;
      while (search_from < text.size() && (static_cast<unsigned char>(text[search_from]) & 0xC0) == 0x80) ++search_from;
      continue;
    }
    if (begin > word_start) on_word(text.substr(word_start, begin - word_start));
    on_word(text.substr(begin, end - begin));
    word_start = search_from = end;
  }
  if (word_start < text.size()) on_word(text.substr(word_start));
}

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<std::int64_t>& ids, pcre2_match_data* match,
                                  BpeScratch& scratch) const {
  split_words(text, match, [&](std::string_view word) { encode_word(word, ids, scratch); });
}

void Tokenizer::Impl::encode_word(std::string_view word, std::vector<std::int64_t>& ids, BpeScratch& scratch) const {
  if (word.size() == 1) {
    const std::int32_t id = byte_ids[static_cast<unsigned char>(word[0])];
    if (id >= 0) ids.push_back(id);
    return;
  }
  const bool cacheable = word.size() <= WordCache::kMaxWordBytes;
  if (cacheable && cache.append(word, ids)) return;
  const std::size_t first = ids.size();
  merge_word(word, ids, scratch);
  if (cacheable) cache.insert(word, std::span<const std::int64_t>(ids).subspan(first));
}

// HF's BPE word merge: every adjacent pair with a merge rule goes into a min-heap keyed by
// (rank, position); the top is applied unless stale (the pair there no longer yields the same
// token), and the new neighbour pairs are pushed. Applying one merge at a time this way, rather
// than all occurrences of the best pair at once, is what HF does; the results agree in practice
// but this is the one that is exact.
void Tokenizer::Impl::merge_word(std::string_view word, std::vector<std::int64_t>& ids, BpeScratch& scratch) const {
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

// ---------------------------------------------------------------------------------------------
// Loading

Tokenizer Tokenizer::load(const std::filesystem::path& tokenizer_json) {
  const auto& file = tokenizer_json;
  json root;
  {
    std::ifstream in(file, std::ios::binary);
    if (!in) bad(file, "cannot open the tokenizer file");
    std::ostringstream content;
    content << in.rdbuf();
    try {
      root = json::parse(content.view());
    } catch (const json::exception& e) {
      bad(file, std::string("not valid JSON (") + e.what() + ")");
    }
  }
  if (!root.is_object()) bad(file, "not a JSON object");

  auto impl = std::make_shared<Impl>();

  // The model: byte-level BPE with nothing else switched on.
  const json& model = require(root, "model", file, "the tokenizer");
  if (!model.is_object() || model.value("type", "") != "BPE") {
    bad(file, "unsupported tokenizer model " + (model.is_object() ? model.value("type", "?") : model.dump()) +
                  " (only BPE)");
  }
  for (const char* key : {"dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "byte_fallback",
                          "ignore_merges"}) {
    require_unset(model, key, file, "model");
  }
  const json& vocab = require(model, "vocab", file, "model");
  if (!vocab.is_object()) bad(file, "model.vocab is not an object");

  struct NamedToken {
    std::string text;
    std::int64_t id;
  };
  std::vector<NamedToken> vocab_tokens;
  vocab_tokens.reserve(vocab.size());
  std::int64_t max_id = -1;
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0) bad(file, "model.vocab[\"" + token + "\"] is not an id");
    vocab_tokens.push_back({token, id.get<std::int64_t>()});
    max_id = std::max(max_id, id.get<std::int64_t>());
  }
  const json& added = root.contains("added_tokens") ? root["added_tokens"] : json::array();
  if (!added.is_array()) bad(file, "added_tokens is not a list");
  for (const json& entry : added) {
    if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_number_integer() || entry["id"].get<std::int64_t>() < 0) {
      bad(file, "added token " + entry.dump() + " has no valid id");
    }
    max_id = std::max(max_id, entry["id"].get<std::int64_t>());
  }
  // Ids index a table; a sparse id far beyond any real vocabulary means a broken file.
  constexpr std::int64_t kMaxTokenId = (std::int64_t{1} << 24) - 1;
  if (max_id > kMaxTokenId) bad(file, "token id " + std::to_string(max_id) + " is implausibly large");

  const ByteLevelAlphabet alphabet;
  std::vector<std::uint32_t> scratch;
  impl->tokens.resize(static_cast<std::size_t>(max_id + 1));
  impl->id_by_token.reserve(vocab_tokens.size() + added.size());
  for (NamedToken& token : vocab_tokens) {
    Impl::TokenInfo& info = impl->tokens[static_cast<std::size_t>(token.id)];
    info.bytes = alphabet.token_bytes(token.text, scratch);
    info.exists = true;
    impl->id_by_token.insert_or_assign(std::move(token.text), static_cast<std::int32_t>(token.id));
  }
  impl->byte_ids.fill(-1);
  for (std::size_t id = 0; id < impl->tokens.size(); ++id) {
    const Impl::TokenInfo& info = impl->tokens[id];
    if (info.exists && info.bytes.size() == 1) {
      std::int32_t& slot = impl->byte_ids[static_cast<unsigned char>(info.bytes[0])];
      if (slot < 0) slot = static_cast<std::int32_t>(id);
    }
  }

  // Merges: "left right" strings (older files) or [left, right] pairs.
  const json& merges = require(model, "merges", file, "model");
  if (!merges.is_array()) bad(file, "model.merges is not a list");
  impl->merges.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const json& merge = merges[rank];
    const std::string where = "model.merges[" + std::to_string(rank) + "]";
    std::string left;
    std::string right;
    if (merge.is_string()) {
      const std::string text = merge.get<std::string>();
      const std::size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        bad(file, where + " \"" + text + "\" is not two tokens separated by one space");
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2) {
      left = json_string(merge[0], file, where + "[0]");
      right = json_string(merge[1], file, where + "[1]");
    } else {
      bad(file, where + " is neither \"a b\" nor [a, b]");
    }
    const auto left_it = impl->id_by_token.find(left);
    const auto right_it = impl->id_by_token.find(right);
    const auto merged_it = impl->id_by_token.find(left + right);
    if (left_it == impl->id_by_token.end() || right_it == impl->id_by_token.end() ||
        merged_it == impl->id_by_token.end()) {
      bad(file, where + " [\"" + left + "\", \"" + right + "\"] uses a token missing from model.vocab");
    }
    impl->merges.insert_or_assign(left_it->second, right_it->second,
                                  MergeRule{static_cast<std::uint32_t>(rank), merged_it->second});
  }

  // Added tokens override the vocabulary for lookups and decoding, as in HF.
  for (const json& entry : added) {
    const std::string content = json_string(require(entry, "content", file, "added token"), file, "added token content");
    const std::string where = "added token \"" + content + "\"";
    for (const char* key : {"single_word", "lstrip", "rstrip"}) require_unset(entry, key, file, where);
    const auto id = static_cast<std::int32_t>(entry["id"].get<std::int64_t>());
    Impl::TokenInfo& info = impl->tokens[static_cast<std::size_t>(id)];
    info.bytes = alphabet.token_bytes(content, scratch);  // HF runs added tokens through the decoder too
    info.exists = true;
    info.special = entry.value("special", false);
    impl->id_by_token.insert_or_assign(content, id);
    if (entry.value("normalized", false)) {
      impl->normalized_added_tokens.add(content, id);
    } else {
      impl->raw_added_tokens.add(content, id);
    }
  }
  impl->distinct_tokens = std::count_if(impl->tokens.begin(), impl->tokens.end(),
                                        [](const Impl::TokenInfo& info) { return info.exists; });

  // Normalizer: NFC or nothing.
  const json& normalizer = root.contains("normalizer") ? root["normalizer"] : json();
  if (normalizer.is_object() && normalizer.value("type", "") == "NFC") {
    impl->nfc = true;
  } else if (!normalizer.is_null()) {
    bad(file, "unsupported normalizer " + normalizer.dump() + " (only NFC)");
  }
  if (impl->nfc && !impl->normalized_added_tokens.empty()) {
    // Their content is matched against normalized text, so normalize it the same way.
    AddedTokenMatcher normalized;
    for (const json& entry : added) {
      if (!entry.value("normalized", false)) continue;
      std::string storage;
      const std::string content = entry["content"].get<std::string>();
      normalized.add(std::string(impl->normalize(content, storage)), static_cast<std::int32_t>(entry["id"].get<std::int64_t>()));
    }
    impl->normalized_added_tokens = std::move(normalized);
  }

  // Pre-tokenizer: Split(regex, Isolated) then ByteLevel without its own regex (Qwen2/Qwen3).
  const json& pre_tokenizer = require(root, "pre_tokenizer", file, "the tokenizer");
  const auto unsupported_pre_tokenizer = [&] {
    bad(file, "unsupported pre_tokenizer " + pre_tokenizer.dump() +
                  " (expected Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)])");
  };
  if (!pre_tokenizer.is_object() || pre_tokenizer.value("type", "") != "Sequence") unsupported_pre_tokenizer();
  const json& steps = pre_tokenizer.contains("pretokenizers") ? pre_tokenizer["pretokenizers"] : json();
  if (!steps.is_array() || steps.size() != 2 || !steps[0].is_object() || !steps[1].is_object()) unsupported_pre_tokenizer();
  const json& split = steps[0];
  const json& byte_level = steps[1];
  if (split.value("type", "") != "Split" || split.value("behavior", "") != "Isolated" || split.value("invert", false) ||
      !split.contains("pattern") || !split["pattern"].is_object() || !split["pattern"].contains("Regex") ||
      !split["pattern"]["Regex"].is_string()) {
    unsupported_pre_tokenizer();
  }
  if (byte_level.value("type", "") != "ByteLevel" || byte_level.value("add_prefix_space", false) ||
      byte_level.value("use_regex", true)) {
    unsupported_pre_tokenizer();
  }
  const std::string onig_pattern = split["pattern"]["Regex"].get<std::string>();
  const auto compile = [&](bool newer_classes) {
    const std::optional<std::string> pattern = onig_pattern_for_pcre2(onig_pattern, newer_classes);
    if (!pattern) bad(file, "unsupported pre-tokenizer regex (\\S, \\P{L} or \\P{N} in a character class): " + onig_pattern);
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    Pcre2Code code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern->data()), pattern->size(), PCRE2_UTF | PCRE2_UCP,
                                 &error_code, &error_offset, nullptr));
    if (!code) {
      std::array<PCRE2_UCHAR, 256> message{};
      pcre2_get_error_message(error_code, message.data(), message.size());
      bad(file, "pre-tokenizer regex " + onig_pattern + " does not compile (PCRE2, at offset " +
                    std::to_string(error_offset) + " of " + *pattern + "): " + reinterpret_cast<const char*>(message.data()));
    }
    // JIT makes matching several times faster; where unavailable, the interpreter gives the same matches.
    pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);
    return code;
  };
  impl->split_regex = compile(false);
  impl->split_regex_newer = compile(true);

  const json& decoder = root.contains("decoder") ? root["decoder"] : json();
  if (!decoder.is_object() || decoder.value("type", "") != "ByteLevel") {
    bad(file, "unsupported decoder " + decoder.dump() + " (only ByteLevel)");
  }
  return Tokenizer(std::move(impl));
}

// ---------------------------------------------------------------------------------------------

std::vector<std::int64_t> Tokenizer::encode(std::string_view text) const {
  check_utf8(text);
  const Impl& impl = *impl_;
  std::vector<std::int64_t> ids;
  ids.reserve(text.size() / 3 + 16);
  const Pcre2MatchData match(pcre2_match_data_create(1, nullptr));  // only the whole match is used
  if (!match) throw Error("out of memory for a regex match");
  BpeScratch scratch;
  std::string normalized_storage;
  const auto push_token = [&](std::int32_t id) { ids.push_back(id); };
  impl.raw_added_tokens.split(
      text,
      [&](std::string_view piece) {
        const std::string_view normalized = impl.normalize(piece, normalized_storage);
        impl.normalized_added_tokens.split(
            normalized, [&](std::string_view rest) { impl.encode_text(rest, ids, match.get(), scratch); }, push_token);
      },
      push_token);
  return ids;
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
  check_utf8(text);
  const Pcre2MatchData match(pcre2_match_data_create(1, nullptr));
  if (!match) throw Error("out of memory for a regex match");
  std::vector<std::string> words;
  impl_->split_words(text, match.get(), [&](std::string_view word) { words.emplace_back(word); });
  return words;
}

std::string Tokenizer::decode(std::span<const std::int64_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (const std::int64_t id : ids) {
    const std::string* token = token_bytes(id);
    if (token == nullptr || (skip_special_tokens && impl_->tokens[static_cast<std::size_t>(id)].special)) continue;
    bytes += *token;
  }
  std::string text;
  text.reserve(bytes.size());
  append_utf8_lossy(bytes, /*final=*/true, text);
  return text;
}

const std::string* Tokenizer::token_bytes(std::int64_t id) const {
  if (id < 0 || id >= static_cast<std::int64_t>(impl_->tokens.size())) return nullptr;
  const Impl::TokenInfo& info = impl_->tokens[static_cast<std::size_t>(id)];
  return info.exists ? &info.bytes : nullptr;
}

std::optional<std::int64_t> Tokenizer::token_id(std::string_view token) const {
  const auto it = impl_->id_by_token.find(token);
  if (it == impl_->id_by_token.end()) return std::nullopt;
  return it->second;
}

std::int64_t Tokenizer::vocab_size() const { return impl_->distinct_tokens; }

bool Tokenizer::is_special(std::int64_t id) const {
  return token_bytes(id) != nullptr && impl_->tokens[static_cast<std::size_t>(id)].special;
}

// ---------------------------------------------------------------------------------------------

TokenStreamDecoder::TokenStreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string TokenStreamDecoder::push(std::int64_t id) {
  const std::string* token = tokenizer_->token_bytes(id);
  // A skipped special token does not end a pending character: decode() joins the bytes around it too.
  if (token == nullptr || (skip_special_tokens_ && tokenizer_->is_special(id))) return {};
  pending_ += *token;
  std::string text;
  const std::size_t used = append_utf8_lossy(pending_, /*final=*/false, text);
  pending_.erase(0, used);
  return text;
}

std::string TokenStreamDecoder::flush() {
  std::string text;
  append_utf8_lossy(pending_, /*final=*/true, text);
  pending_.clear();
  return text;
}

}  // namespace q3vl
