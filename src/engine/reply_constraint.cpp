#include "engine/reply_constraint.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "q3vl/error.h"

namespace q3vl {

ReplyConstraint::ReplyConstraint(const JsonSchema& schema, const JsonTokenMask& mask, const Tokenizer& tokenizer,
                                 std::span<const std::int64_t> eos, Framing framing)
    : matcher_(schema.root()), mask_(mask), tokenizer_(tokenizer), eos_(eos.begin(), eos.end()) {
  if (eos_.empty()) throw Error("internal: constrained decoding needs an end-of-sequence token");
  if (!framing.before.empty()) before_ = tokenizer.encode(framing.before);
  if (!framing.after.empty()) after_ = tokenizer.encode(framing.after);
  if (framing.starts_in_reasoning) {
    const std::optional<std::int64_t> close = tokenizer.token_id(kThinkClose);
    if (!close) throw InvalidInput("the template opens <think> but the vocabulary has no </think> token");
    think_close_token_ = *close;
    // As the templates write a reasoning turn back: "\n</think>\n\n".
    reasoning_close_ = tokenizer.encode("\n");
    reasoning_close_.push_back(think_close_token_);
    const std::vector<std::int64_t> separator = tokenizer.encode("\n\n");
    reasoning_close_.insert(reasoning_close_.end(), separator.begin(), separator.end());
    phase_ = Phase::Reasoning;
  } else if (!before_.empty()) {
    phase_ = Phase::Forced;
    forced_ = before_;
  } else {
    phase_ = Phase::Document;
  }
  document_tokens_ = static_cast<std::int64_t>(completion_tokens(matcher_).size());
}

std::int64_t ReplyConstraint::minimum_tokens() const {
  const std::size_t reasoning = phase_ == Phase::Reasoning ? reasoning_close_.size() : 0;
  return static_cast<std::int64_t>(reasoning + before_.size() + after_.size()) + document_tokens_;
}

bool ReplyConstraint::is_eos(std::int64_t token) const { return std::find(eos_.begin(), eos_.end(), token) != eos_.end(); }

std::int64_t ReplyConstraint::next(std::span<const float> logits, std::int64_t left, Sampler& sampler,
                                   std::span<const std::int64_t> history, std::size_t generated) {
  switch (phase_) {
    case Phase::Reasoning: return next_in_reasoning(logits, left, sampler, history, generated);
    case Phase::Forced: return forced_.front();
    case Phase::Document: break;
    case Phase::End: return eos_.front();
  }
  const std::int64_t token = next_in_document(logits, left - static_cast<std::int64_t>(after_.size()), sampler, history, generated);
  if (is_eos(token) && !after_.empty()) {  // the document is complete: the closing text follows
    phase_ = Phase::Forced;
    document_done_ = true;
    forced_ = after_;
    return forced_.front();
  }
  return token;
}

std::int64_t ReplyConstraint::next_in_reasoning(std::span<const float> logits, std::int64_t left, Sampler& sampler,
                                                std::span<const std::int64_t> history, std::size_t generated) {
  if (left <= minimum_tokens()) {  // only the shortest rest still fits: close the reasoning now
    phase_ = Phase::Forced;
    forced_ = reasoning_close_;
    forced_.insert(forced_.end(), before_.begin(), before_.end());
    return forced_.front();
  }
  // The reply cannot end before its document.
  masked_.assign(logits.begin(), logits.end());
  for (const std::int64_t id : eos_) {
    if (id >= 0 && std::cmp_less(id, masked_.size())) masked_[static_cast<std::size_t>(id)] = -std::numeric_limits<float>::infinity();
  }
  return sampler.next(masked_, history, generated);
}

std::int64_t ReplyConstraint::next_in_document(std::span<const float> logits, std::int64_t left, Sampler& sampler,
                                               std::span<const std::int64_t> history, std::size_t generated) {
  if (!forced_.empty()) return forced_.front();  // a completion under way
  // Once per token: the shortest completion, to see whether only it still fits.
  std::vector<std::int64_t> tail = completion_tokens(matcher_);
  const std::int64_t spare = left - static_cast<std::int64_t>(tail.size());
  if (!tail.empty() && spare <= 0) {
    forced_ = std::move(tail);
    return forced_.front();
  }
  if (mask(logits)) {
    if (spare > kNearTheEnd) return sampler.next(masked_, history, generated);
    // Near the end, a token counts only if the document can still be completed after it (one
    // token can open a key or a nested value whose shortest completion is longer).
    for (int attempt = 0; attempt < 64; ++attempt) {
      const std::int64_t token = sampler.next(masked_, history, generated);
      if (is_eos(token)) return token;
      JsonMatcher after = matcher_;
      if (after.feed(tokenizer_.bytes_of(token)) && std::cmp_less_equal(completion_tokens(after).size(), left - 1)) return token;
      masked_[static_cast<std::size_t>(token)] = -std::numeric_limits<float>::infinity();
    }
  }
  forced_ = completion_tokens(matcher_);
  return forced_.empty() ? eos_.front() : forced_.front();
}

void ReplyConstraint::take(std::int64_t token) {
  switch (phase_) {
    case Phase::Reasoning:
      if (token == think_close_token_) {  // the model closed it: the separator and the opening text follow
        const auto after_close = std::find(reasoning_close_.begin(), reasoning_close_.end(), think_close_token_) + 1;
        forced_.assign(after_close, reasoning_close_.end());
        forced_.insert(forced_.end(), before_.begin(), before_.end());
        phase_ = forced_.empty() ? Phase::Document : Phase::Forced;
      }
      return;
    case Phase::Forced:
      if (forced_.empty() || token != forced_.front()) throw Error("internal: token " + std::to_string(token) + " is not the forced one");
      forced_.erase(forced_.begin());
      if (forced_.empty()) phase_ = document_done_ ? Phase::End : Phase::Document;
      return;
    case Phase::Document:
      if (!matcher_.feed(tokenizer_.bytes_of(token))) {
        throw Error("internal: token " + std::to_string(token) + " does not continue the JSON document");
      }
      if (!forced_.empty()) forced_.erase(forced_.begin());
      return;
    case Phase::End: throw Error("internal: a token after the constrained reply's end");
  }
}

// The logits of the tokens that cannot continue the document set to -inf, in masked_; false when
// none can.
bool ReplyConstraint::mask(std::span<const float> logits) {
  mask_.compute(matcher_, eos_, allowed_);
  masked_.assign(logits.begin(), logits.end());
  bool any = false;
  for (std::size_t i = 0; i < masked_.size(); ++i) {
    if (i < allowed_.size() && allowed_[i] != 0) {
      any = true;
    } else {
      masked_[i] = -std::numeric_limits<float>::infinity();
    }
  }
  return any;
}

// The shortest completion as tokens: a character cut in the middle is finished byte by byte (its
// bytes are no text to encode), the rest is encoded as text.
std::vector<std::int64_t> ReplyConstraint::completion_tokens(const JsonMatcher& matcher) const {
  const std::string completion = matcher.shortest_completion();
  std::size_t bytes = 0;
  std::vector<std::int64_t> tokens;
  while (bytes < completion.size() && (static_cast<unsigned char>(completion[bytes]) & 0xC0) == 0x80) {
    const std::int64_t token = mask_.byte_token(static_cast<unsigned char>(completion[bytes++]));
    if (token < 0) throw Error("internal: the vocabulary has no token for a lone UTF-8 byte");
    tokens.push_back(token);
  }
  if (bytes < completion.size()) {
    const std::vector<std::int64_t> text = tokenizer_.encode(completion.substr(bytes));
    tokens.insert(tokens.end(), text.begin(), text.end());
  }
  return tokens;
}

}  // namespace q3vl
