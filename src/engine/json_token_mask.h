#pragma once
// Constrained decoding for JSON: which tokens of the vocabulary can continue a document a
// JsonMatcher follows. Built once per tokenizer: a trie of every token's bytes (special tokens
// excluded), walked with the matcher so whole branches die at their first impossible byte; inside a
// free string, tokens of plain text (no quote, backslash or control byte; valid UTF-8, the last
// character possibly cut short) are taken without a walk, since any of them continues any such
// string, and only tokens with a quote, backslash or control byte are tried one by one.
#include <cstdint>
#include <span>
#include <vector>

#include "engine/json_matcher.h"
#include "text/tokenizer.h"

namespace q3vl {

class JsonTokenMask {
 public:
  explicit JsonTokenMask(const Tokenizer& tokenizer);

  // allowed[id] = 1 for each token the matcher takes whole, else 0 (sized to the vocabulary); once
  // the document is complete, only the `eos` tokens.
  void compute(const JsonMatcher& matcher, std::span<const std::int64_t> eos, std::vector<std::uint8_t>& allowed) const;
  // The token that is this one byte, or -1 (byte-level vocabularies have one per byte).
  std::int64_t byte_token(unsigned char byte) const;

 private:
  struct Node {
    std::int32_t first_child = -1, next_sibling = -1, token = -1;
    unsigned char byte = 0;
  };
  // Tokens that start with `lead` UTF-8 continuation bytes (0 to 3: they finish a character cut
  // short by the token before), sorted by how the rest reads inside a string.
  struct Group {
    std::vector<std::int32_t> plain, plain_chars;  // the rest is plain text (its length in characters)
    std::vector<std::uint8_t> plain_first;           // their first byte
    std::vector<std::int32_t> simulate;              // the rest holds a quote, backslash or control byte
  };

  std::vector<Node> trie_;  // node 0: the root
  std::vector<std::string> bytes_;  // per token id
  Group groups_[4];
  std::size_t vocab_ = 0;
};

}  // namespace q3vl
