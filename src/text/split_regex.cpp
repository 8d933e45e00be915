#include "text/split_regex.h"

#include <array>
#include <cstdio>
#include <span>

#include "q3vl/error.h"
#include "text/utf8.h"

namespace q3vl::tokenizer_internal {
namespace {

using utf8::CodePointRange;

// Oniguruma's \s (what HF's regexes run on) is exactly Unicode White_Space. PCRE2 10.42 also counts
// U+180E MONGOLIAN VOWEL SEPARATOR (White_Space before Unicode 6.3), which splits such text
// differently, so \s and \S are spelled out as explicit classes.
constexpr std::string_view kWhiteSpaceClassItems =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// Letters and numbers added in Unicode 15.0-16.0. HF's Oniguruma has Unicode 16 classes; PCRE2
// 10.42 (Debian 12) stops at Unicode 14, so \p{L} and \p{N} get these appended. Found by comparing
// both engines on every code point; the test checks all 1.1M code points against HF's classes
// (tests/fixtures/tokenizer/hf_unicode.json). A newer PCRE2 already has them: no harm.
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

// Appends the rewrite of the escape whose letter is pattern[i] (just after a backslash), moving
// `i` past a property name it consumes. False for an escape that has no rewrite in a class.
bool append_escape(std::string_view pattern, std::size_t& i, bool in_class, bool newer_classes, std::string& out) {
  const char escaped = pattern[i];
  if (escaped == 's') {
    out += in_class ? std::string(kWhiteSpaceClassItems) : "[" + std::string(kWhiteSpaceClassItems) + "]";
  } else if (escaped == 'S') {
    if (in_class) return false;
    out += "[^" + std::string(kWhiteSpaceClassItems) + "]";
  } else if (newer_classes && (escaped == 'p' || escaped == 'P') &&
             (pattern.substr(i + 1, 3) == "{L}" || pattern.substr(i + 1, 3) == "{N}")) {
    const bool negated = escaped == 'P';
    const char property = pattern[i + 2];
    const std::string items = std::string("\\p{") + property + "}" +
                              (property == 'L' ? class_items(kNewerLetters) : class_items(kNewerNumbers));
    i += 3;
    if (in_class) {
      if (negated) return false;
      out += items;
    } else {
      out += (negated ? "[^" : "[") + items + "]";
    }
  } else {
    out += '\\';
    out += escaped;
  }
  return true;
}

[[noreturn]] void bad(const std::filesystem::path& file, const std::string& what) {
  throw InvalidInput(file.string() + ": " + what);
}

Pcre2Code compile_for_pcre2(const std::string& onig_pattern, bool newer_classes, const std::filesystem::path& file) {
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
}

}  // namespace

std::optional<std::string> onig_pattern_for_pcre2(std::string_view pattern, bool newer_classes) {
  std::string out;
  out.reserve(pattern.size() + 128);
  bool in_class = false;
  bool class_start = false;  // just after "[" or "[^", where "]" is a literal
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      class_start = false;
      if (!append_escape(pattern, ++i, in_class, newer_classes, out)) return std::nullopt;
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

bool has_newer_letter_or_number(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size(); ++pos) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    if (lead != 0xE1 && lead != 0xEA && lead != 0xF0) continue;
    const std::size_t length = utf8::next_sequence(text, pos).length;  // the text is valid UTF-8
    const std::uint32_t code_point = utf8::decode_code_point(text, pos, length);
    if (utf8::in_ranges(kNewerLetters, code_point) || utf8::in_ranges(kNewerNumbers, code_point)) return true;
  }
  return false;
}

SplitRegex SplitRegex::compile(const std::string& onig_pattern, const std::filesystem::path& file) {
  SplitRegex split;
  split.regex_ = compile_for_pcre2(onig_pattern, false, file);
  split.regex_newer_ = compile_for_pcre2(onig_pattern, true, file);
  return split;
}

Pcre2MatchData SplitRegex::new_match_data() {
  Pcre2MatchData match(pcre2_match_data_create(1, nullptr));
  if (!match) throw Error("out of memory for a regex match");
  return match;
}

void throw_match_error(int error_code) {
  std::array<PCRE2_UCHAR, 256> message{};
  pcre2_get_error_message(error_code, message.data(), message.size());
  throw Error(std::string("pre-tokenizer regex failed: ") + reinterpret_cast<const char*>(message.data()));
}

}  // namespace q3vl::tokenizer_internal
