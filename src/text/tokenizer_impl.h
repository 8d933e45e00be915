#pragma once
// What a loaded Tokenizer holds (internal to the tokenizer: tokenizer_load.cpp fills it,
// tokenizer.cpp encodes and decodes with it).
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/added_tokens.h"
#include "text/bpe.h"
#include "text/split_regex.h"

namespace q3vl::tokenizer_internal {

struct TokenInfo {
  std::string bytes;  // what decode() produces for it
  bool exists = false;
  bool special = false;
};

struct TokenizerImpl {
  std::vector<TokenInfo> tokens;  // by id
  std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>> id_by_token;
  std::int64_t distinct_tokens = 0;
  ByteTokenIds byte_ids{};  // the single-byte tokens, -1 where missing
  MergeTable merges;
  AddedTokenMatcher raw_added_tokens;         // "normalized": false, matched on the raw text
  AddedTokenMatcher normalized_added_tokens;  // "normalized": true, matched after NFC
  bool nfc = false;
  SplitRegex split_regex;   // the pre-tokenizer
  mutable WordCache cache;  // filled by the const encode(); locks internally

  std::string_view normalize(std::string_view text, std::string& storage) const;
  // One normalized piece between added tokens: words, then BPE per word.
  void encode_text(std::string_view text, std::vector<std::int64_t>& ids, pcre2_match_data* match,
                   BpeScratch& scratch) const;
  void encode_word(std::string_view word, std::vector<std::int64_t>& ids, BpeScratch& scratch) const;
};

}  // namespace q3vl::tokenizer_internal
