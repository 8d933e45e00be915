#pragma once
// Constrained decoding of one reply: the reply is held to a JSON document (response_format) or to
// one tool call in Qwen's format (`<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`,
// tool_choice "required" or a named function), so that even an untrained model's reply parses and
// validates. Each token is the model's choice among those that can continue the document; text
// around the document (the tags) is forced. A Thinking model first reasons freely; the reasoning
// is closed (`</think>`) by force when the tokens left only just hold the shortest valid rest, and
// the document when only its shortest completion still fits.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/json_matcher.h"
#include "engine/json_schema.h"
#include "engine/json_token_mask.h"
#include "engine/sampler.h"
#include "text/reply_parser.h"
#include "text/tokenizer.h"

namespace q3vl {

class ReplyConstraint {
 public:
  struct Framing {
    bool starts_in_reasoning = false;  // the prompt opened `<think>`
    std::string before, after;         // forced text around the document ("<tool_call>\n", "\n</tool_call>")
  };

  // `schema` must outlive the constraint. Throws Error if the vocabulary lacks a token it needs.
  ReplyConstraint(const JsonSchema& schema, const JsonTokenMask& mask, const Tokenizer& tokenizer,
                  std::span<const std::int64_t> eos, Framing framing);

  // The fewest tokens a valid reply takes from the start (without its end-of-sequence token); while
  // reasoning, what is still needed.
  std::int64_t minimum_tokens() const;

  // The next token, given the model's logits; `left`: tokens this reply may still have, this one
  // included. Then take() it (or an end-of-sequence token: the reply is over).
  std::int64_t next(std::span<const float> logits, std::int64_t left, Sampler& sampler, std::span<const std::int64_t> history,
                    std::size_t generated);
  void take(std::int64_t token);
  // Everything the constraint asks for has been written: only the end of the reply can follow.
  bool finished() const { return phase_ == Phase::End; }

 private:
  enum class Phase { Reasoning, Forced, Document, End };

  static constexpr std::int64_t kNearTheEnd = 24;  // see next_in_document

  std::int64_t next_in_reasoning(std::span<const float> logits, std::int64_t left, Sampler& sampler,
                                 std::span<const std::int64_t> history, std::size_t generated);
  std::int64_t next_in_document(std::span<const float> logits, std::int64_t left, Sampler& sampler,
                                std::span<const std::int64_t> history, std::size_t generated);
  bool mask(std::span<const float> logits);
  std::vector<std::int64_t> completion_tokens(const JsonMatcher& matcher) const;
  bool is_eos(std::int64_t token) const;

  JsonMatcher matcher_;
  const JsonTokenMask& mask_;
  const Tokenizer& tokenizer_;
  std::vector<std::int64_t> eos_;
  std::vector<std::int64_t> reasoning_close_, before_, after_;  // tokens
  std::int64_t think_close_token_ = -1;
  // The shortest document's tokens before any of it is written: what minimum_tokens() counts while
  // the reply reasons (the matcher does not move then), computed once instead of per token.
  std::int64_t document_tokens_ = 0;
  Phase phase_;
  std::vector<std::int64_t> forced_;  // tokens still to force, in order
  bool document_done_ = false;        // forced_ is the text after the document
  std::vector<std::uint8_t> allowed_;
  std::vector<float> masked_;
};

}  // namespace q3vl
