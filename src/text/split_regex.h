#pragma once
// The pre-tokenizer's Split regex (internal to the tokenizer). HF runs the pattern from
// tokenizer.json on Oniguruma with Unicode 16 classes; here it runs on PCRE2, with the pattern
// rewritten so that both engines see the same classes (split_regex.cpp lists the differences).
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

namespace q3vl::tokenizer_internal {

struct Pcre2CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct Pcre2MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
using Pcre2Code = std::unique_ptr<pcre2_code, Pcre2CodeDeleter>;
using Pcre2MatchData = std::unique_ptr<pcre2_match_data, Pcre2MatchDataDeleter>;

// Rewrites an Oniguruma pattern for PCRE2 so both see the same classes: \s and \S spelled out,
// and with `newer_classes`, \p{L} and \p{N} extended to Unicode 16 (that costs half the regex
// speed, so it is used only on text that has such characters). The engines agree on the rest
// this tokenizer uses. Returns nullopt for \S, \P{L} or \P{N} inside a character class, which
// have no simple rewrite.
std::optional<std::string> onig_pattern_for_pcre2(std::string_view pattern, bool newer_classes);

// Whether `text` holds a letter or number added in Unicode 15.0-16.0 (lead bytes E1, EA and F0 only).
bool has_newer_letter_or_number(std::string_view text);

class SplitRegex {
 public:
  // The pattern compiled twice: with PCRE2's own classes, and with Unicode 16 letters and numbers
  // for text that has them. Throws InvalidInput naming `file` if the pattern cannot be rewritten
  // or does not compile.
  static SplitRegex compile(const std::string& onig_pattern, const std::filesystem::path& file);

  // Match data for split(); one per call, as it is not shared between threads. Only the whole
  // match is used.
  static Pcre2MatchData new_match_data();

  // "Isolated" splitting: the matches and the gaps between them are all words.
  template <typename OnWord>
  void split(std::string_view text, pcre2_match_data* match, OnWord&& on_word) const;

 private:
  Pcre2Code regex_;        // PCRE2's Unicode 14 classes
  Pcre2Code regex_newer_;  // the same with Unicode 16 letters and numbers
};

[[noreturn]] void throw_match_error(int error_code);

template <typename OnWord>
void SplitRegex::split(std::string_view text, pcre2_match_data* match, OnWord&& on_word) const {
  const pcre2_code* regex = has_newer_letter_or_number(text) ? regex_newer_.get() : regex_.get();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t word_start = 0;
  std::size_t search_from = 0;
  while (search_from < text.size()) {
    // The text was checked (or produced by utf8proc) as valid UTF-8: skip PCRE2's own check.
    const int found = pcre2_match(regex, subject, text.size(), search_from, PCRE2_NO_UTF_CHECK, match, nullptr);
    if (found == PCRE2_ERROR_NOMATCH) break;
    if (found < 0) throw_match_error(found);
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

}  // namespace q3vl::tokenizer_internal
