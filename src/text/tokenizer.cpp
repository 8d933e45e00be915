// The Tokenizer's encode and decode paths; loading is in tokenizer_load.cpp, the parts it is made
// of in utf8, split_regex, hf_nfc, added_tokens and bpe.
#include "text/tokenizer.h"

#include "text/hf_nfc.h"
#include "text/tokenizer_impl.h"
#include "text/utf8.h"

namespace q3vl {

void require_valid_utf8(std::string_view text, std::string_view what) { utf8::check_valid(text, what); }

namespace tokenizer_internal {

std::string_view TokenizerImpl::normalize(std::string_view text, std::string& storage) const {
  return nfc ? hf_nfc(text, storage) : text;
}

void TokenizerImpl::encode_text(std::string_view text, std::vector<std::int64_t>& ids, pcre2_match_data* match,
                                BpeScratch& scratch) const {
  split_regex.split(text, match, [&](std::string_view word) { encode_word(word, ids, scratch); });
}

void TokenizerImpl::encode_word(std::string_view word, std::vector<std::int64_t>& ids, BpeScratch& scratch) const {
  if (word.size() == 1) {
    const std::int32_t id = byte_ids[static_cast<unsigned char>(word[0])];
    if (id >= 0) ids.push_back(id);
    return;
  }
  const bool cacheable = word.size() <= WordCache::kMaxWordBytes;
  if (cacheable && cache.append(word, ids)) return;
  const std::size_t first = ids.size();
  merge_word(word, byte_ids, merges, ids, scratch);
  if (cacheable) cache.insert(word, std::span<const std::int64_t>(ids).subspan(first));
}

}  // namespace tokenizer_internal

// ---------------------------------------------------------------------------------------------

std::vector<std::int64_t> Tokenizer::encode(std::string_view text) const {
  utf8::check_valid(text);
  const Impl& impl = *impl_;
  std::vector<std::int64_t> ids;
  ids.reserve(text.size() / 3 + 16);
  const tokenizer_internal::Pcre2MatchData match = tokenizer_internal::SplitRegex::new_match_data();
  tokenizer_internal::BpeScratch scratch;
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
  utf8::check_valid(text);
  const tokenizer_internal::Pcre2MatchData match = tokenizer_internal::SplitRegex::new_match_data();
  std::vector<std::string> words;
  impl_->split_regex.split(text, match.get(), [&](std::string_view word) { words.emplace_back(word); });
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
  utf8::append_lossy(bytes, /*final=*/true, text);
  return text;
}

std::string Tokenizer::bytes_of(std::int64_t id) const {
  const std::string* bytes = token_bytes(id);
  return bytes != nullptr ? *bytes : std::string();
}

const std::string* Tokenizer::token_bytes(std::int64_t id) const {
  if (id < 0 || id >= static_cast<std::int64_t>(impl_->tokens.size())) return nullptr;
  const tokenizer_internal::TokenInfo& info = impl_->tokens[static_cast<std::size_t>(id)];
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
  const std::size_t used = utf8::append_lossy(pending_, /*final=*/false, text);
  pending_.erase(0, used);
  return text;
}

std::string TokenStreamDecoder::flush() {
  std::string text;
  utf8::append_lossy(pending_, /*final=*/true, text);
  pending_.clear();
  return text;
}

}  // namespace q3vl
