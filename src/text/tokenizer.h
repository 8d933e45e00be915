#pragma once
// The Qwen2/Qwen3 byte-level BPE tokenizer, read from a Hugging Face tokenizer.json and matching
// Hugging Face `tokenizers` id for id (docs/model-math.md §8.2):
//   encode: added tokens are cut out of the raw text first (leftmost-longest), the rest is NFC
//   normalized, split by the pre-tokenizer regex of the file ("Isolated"), mapped to bytes and
//   merged by BPE rank. No special tokens are added.
//   decode: tokens back to bytes (ByteLevel), invalid UTF-8 replaced by U+FFFD per maximal
//   invalid subsequence (Rust from_utf8_lossy, = Python errors="replace"). Ids with no token
//   (the model's padded rows 151669..151935, negative ids) are dropped, as Hugging Face does.
// HF's own Unicode data is matched too, not just the algorithm: its regex classes are Unicode 16
// and its NFC tables Unicode 9, whatever PCRE2 and utf8proc have (see split_regex.cpp, hf_nfc.cpp).
// All const members are safe to call from several threads at once.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace q3vl {

namespace tokenizer_internal {
struct TokenizerImpl;  // text/tokenizer_impl.h
}

// Throws InvalidInput unless `text` is valid UTF-8: "<what> is not valid UTF-8: bad sequence at
// byte offset N (0xFF)", the offset counted in `text` itself. For checking a user's text before it
// is embedded in a chat template, where an offset in the rendered whole would mean nothing.
void require_valid_utf8(std::string_view text, std::string_view what);

class Tokenizer {
 public:
  // Throws InvalidInput naming the file if it is unreadable, not JSON, or describes a tokenizer
  // this class does not implement (anything but byte-level BPE with the Qwen pipeline shape).
  static Tokenizer load(const std::filesystem::path& tokenizer_json);

  // `text` must be valid UTF-8 (Python strings cannot hold anything else, so there is no Hugging
  // Face behaviour to copy): otherwise InvalidInput names the byte offset of the first bad byte.
  std::vector<std::int64_t> encode(std::string_view text) const;
  std::string decode(std::span<const std::int64_t> ids, bool skip_special_tokens = false) const;

  // The words the BPE step sees: the pre-tokenizer regex split of `text` alone (no added tokens,
  // no normalization), like HF's pre_tokenize_str. For tests and debugging.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  // The id of a token as written in tokenizer.json (added tokens by content, e.g. "<|im_end|>";
  // vocabulary tokens in their byte-level spelling, e.g. "Ġthe").
  std::optional<std::int64_t> token_id(std::string_view token) const;
  std::int64_t vocab_size() const;  // distinct tokens, added tokens included
  bool is_special(std::int64_t id) const;  // an added token flagged "special" (skipped on request)
  // The raw bytes one token decodes to (a piece of a UTF-8 character for some), "" for an id with
  // no token: what OpenAI's logprobs report per token.
  std::string bytes_of(std::int64_t id) const;

 private:
  using Impl = tokenizer_internal::TokenizerImpl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  // The bytes `id` decodes to, or null if the id has no token.
  const std::string* token_bytes(std::int64_t id) const;

  std::shared_ptr<const Impl> impl_;  // immutable after load (but a locked word cache): copies share it
  friend class TokenStreamDecoder;
};

// Incremental decoding for streaming: push ids one at a time and get back only complete UTF-8
// text (never half a character). The pieces concatenate to Tokenizer::decode of all the ids;
// flush() returns what is left, with U+FFFD for an incomplete tail, and starts afresh.
// The tokenizer must outlive the decoder.
class TokenStreamDecoder {
 public:
  explicit TokenStreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  std::string push(std::int64_t id);
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;  // bytes of a character not yet complete
};

}  // namespace q3vl
