#pragma once
// A multi-turn conversation on a shared Model. Each turn renders the chat, tokenizes it, runs the
// vision encoder on the turn's images and videos, and feeds the decoder only the tokens its KV
// cache does not already hold, then streams the reply. Creating one loads nothing (microseconds); its memory is
// its KV cache, which grows with the conversation. Thread contract: see q3vl/model.h.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "q3vl/batch.h"
#include "q3vl/image.h"
#include "q3vl/model.h"
#include "q3vl/sampling.h"
#include "q3vl/video.h"

namespace q3vl {

struct ConversationOptions {
  std::string system_prompt;
  std::int64_t context_length = 0;  // 0: the package's max_length
  // Image token budget per image; unset: the package's. When only one is given and it crosses the
  // package's other bound, that bound follows it (the user's number wins).
  std::optional<std::int64_t> min_image_tokens, max_image_tokens;
  // Images whose vision pass would need more memory than this are refused before it runs.
  // 0: Q3VL_MAX_VISION_MEMORY_MB if set, else 3/4 of physical memory.
  std::uint64_t vision_memory_budget_bytes = 0;
  // Videos: frames sampled per second of the clip, the most frames one clip gives, and one clip's
  // token budget (frames rounded up to pairs x height x width / 2048); unset: the package's
  // video_preprocessor_config.json (HF's defaults: 2 frames per second, 4..768 frames).
  std::optional<double> video_fps;
  std::optional<std::int64_t> max_video_frames;
  std::optional<std::int64_t> min_video_tokens, max_video_tokens;
  // The most prompt tokens one decoder call takes: longer prompts (a video's thousands of tokens)
  // are prefilled in chunks through the KV cache, which bounds attention's scratch memory
  // (chunk x context floats per head). 0: the whole prompt at once.
  std::int64_t prefill_chunk_tokens = 1024;
  // Run this conversation's model passes on a shared engine, batched with its other conversations'
  // (q3vl/batch.h); it takes one of the engine's KV cache rows while it exists, and its context is
  // the engine's (context_length must be 0 or no more than tokens_per_sequence). Null: alone.
  std::shared_ptr<BatchEngine> engine;
};

// One image or video of a user turn.
using Media = std::variant<RgbImage, VideoClip>;

// A call of one of the tools a request offered: in an assistant message of a chat (what the model
// asked earlier) or in a Reply.
struct FunctionCall {
  std::string id;         // the caller's handle for it (replies: "call_" and 24 random hex digits)
  std::string name;
  std::string arguments;  // JSON text of the arguments object
};

// One message of a whole chat for Conversation::respond: text, images and videos in order.
using MessagePart = std::variant<std::string, RgbImage, VideoClip>;
struct Message {
  std::string role;  // system, user, assistant or tool (images and videos only in user messages)
  std::vector<MessagePart> content;
  // (Default member initializers: `Message{"user", {parts}}` stays a complete initializer.)
  std::vector<FunctionCall> tool_calls = {};  // assistant: the calls it made
  std::string reasoning = {};                 // assistant: a Thinking model's reasoning (templates that keep it show it)
  std::string tool_call_id = {};              // tool: the call this result answers (Qwen's templates do not show it)
};

// Which tool calls a reply may make when tools are offered.
struct ToolChoice {
  enum class Mode {
    Auto,      // the model decides; `<tool_call>` output becomes Reply::tool_calls
    None,      // no calls: tools stay in the prompt, the reply is only text
    Required,  // exactly one call of one of the tools, constrained like a JSON schema
    Function,  // exactly one call of `function`
  };
  Mode mode = Mode::Auto;
  std::string function;
};

// A piece of a reply as it streams, classified: reasoning, answer text, or a whole tool call.
struct ReplyDelta {
  enum class Kind { Reasoning, Content, ToolCall };
  Kind kind = Kind::Content;
  std::string_view text;               // Reasoning, Content
  const FunctionCall* call = nullptr;  // ToolCall
  std::size_t call_index = 0;          // ToolCall: its index in Reply::tool_calls
};

// A generated token and how likely the model found it and its best alternatives: natural logs of
// the model's own distribution (the softmax of the raw logits, before penalties and temperature).
struct TokenLogprob {
  std::int64_t token = 0;
  std::string bytes;  // what the token decodes to (may be part of a UTF-8 character)
  float logprob = 0;
};
struct TokenChoice {
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;  // the `top_logprobs` most likely tokens, most likely first
};

// Structured output: the reply is one JSON document, any object or one that matches a JSON Schema
// (types, properties/required, enum/const, arrays with min/max items, nested objects, anyOf,
// string lengths; others refused by name). Each token is chosen among those that can continue a
// valid document, so even an untrained model's reply parses and validates; when max_new_tokens
// would cut it, the reply ends with the shortest text that completes it (finish_reason "length").
// Required properties come first in the order `required` lists them, then optional ones in the
// schema's order; compact (at most one space after ':' and ',').
struct ResponseFormat {
  enum class Kind { Text, JsonObject, JsonSchema };
  Kind kind = Kind::Text;
  std::string schema;  // JsonSchema: the schema, as JSON text
};

struct ReplyOptions {
  std::optional<SamplingOptions> sampling;  // unset: the package's generation_config
  std::int64_t max_new_tokens = 512;
  std::vector<std::string> stop_strings;
  // Per-reply image token budget, in place of the conversation's (the same rules).
  std::optional<std::int64_t> min_image_tokens, max_image_tokens;
  // -1: no log probabilities; 0..20: each token's, with that many alternatives (Reply::logprobs,
  // and on_token as they come).
  int top_logprobs = -1;
  // Polled between prefill chunks and before every token (from the generating thread): returning
  // true abandons the reply with Cancelled, leaving the conversation as it was.
  std::function<bool()> cancelled;
  // Called once the prompt is rendered, fits the context and its media fit the memory budget,
  // before the vision encoder and the prefill run: all later failures are internal errors.
  std::function<void(std::int64_t prompt_tokens, std::int64_t cached_tokens)> on_prompt_ready;
  // Called for every generated token (with top_logprobs >= 0 only), before its text reaches on_text.
  std::function<void(const TokenChoice&)> on_token;
  ResponseFormat response_format;
  // Tool definitions as JSON text, OpenAI's shape ({"type": "function", "function": {"name",
  // "description", "parameters"}}), given to the chat template as `tools` (key order kept).
  std::vector<std::string> tools;
  ToolChoice tool_choice;  // Required/Function: the function's "parameters" is the arguments' schema
  // More variables for the chat template, a JSON object's text: what HF's apply_chat_template takes
  // as keyword arguments (vLLM's chat_template_kwargs), e.g. {"enable_thinking": false} for
  // templates that read it, {"add_vision_id": true}. messages, tools, documents and
  // add_generation_prompt are the chat's own and refused here.
  std::string template_variables;
  // Called with each classified piece as it streams (from the generating thread), after on_text
  // has had the raw text it came from.
  std::function<void(const ReplyDelta&)> on_delta;
};

struct Timings {
  std::int64_t image_tokens = 0;   // of this turn's new images
  std::int64_t video_tokens = 0;   // of this turn's new videos
  std::int64_t video_frames = 0;   // frames sampled from them
  double video_decode_ms = 0;      // decoding, resizing and cutting those frames into patches
  double vision_ms = 0;       // the vision encoder, its loading included on the first image
  double vision_load_ms = 0;  // of which loading vision.onnx (0 once loaded)
  std::int64_t prefill_tokens = 0;
  double prefill_ms = 0;
  double time_to_first_token_ms = 0;
  std::int64_t decode_tokens = 0;
  double decode_ms = 0;
};

struct Reply {
  std::string text;  // everything generated, as decoded (reasoning and tool-call tags included)
  // `text` taken apart: the answer, a Thinking model's reasoning (`<think>` ... `</think>`), and
  // the tool calls (when tools were offered and tool_choice is not None). A tool call that does
  // not parse stays in `content` as the model wrote it.
  std::string content;
  std::string reasoning;
  std::vector<FunctionCall> tool_calls;
  std::vector<std::int64_t> tokens;
  // "stop" (EOS or stop string), "length" (token or context limit), or "tool_calls" (stopped after
  // making calls)
  std::string finish_reason;
  std::int64_t prompt_tokens = 0;  // the whole rendered chat, media tokens included
  std::int64_t cached_tokens = 0;  // of which the KV cache already held (not computed again)
  std::vector<TokenChoice> logprobs;  // with ReplyOptions::top_logprobs >= 0
  Timings timings;
};

struct TurnTrace;          // everything one turn computed, for `q3vl run --dump` (internal)
struct ConversationState;  // the sequence: KV cache, positions, history (internal)

class Conversation {
 public:
  // Throws InvalidInput for a system prompt that is not UTF-8 or holds media placeholders.
  explicit Conversation(std::shared_ptr<const Model> model, ConversationOptions options = {});
  ~Conversation();
  Conversation(Conversation&&) noexcept;
  Conversation& operator=(Conversation&&) noexcept;

  // One user turn: `media` (images and videos, in order) then `text`; generates and streams the
  // assistant reply through `on_text` (UTF-8 pieces). A turn that throws leaves the conversation as
  // it was.
  Reply send(const std::vector<Media>& media, const std::string& text, const ReplyOptions& options = {},
             const std::function<void(std::string_view)>& on_text = {}, TurnTrace* trace = nullptr);

  // The whole chat at once, as HTTP APIs send it: `messages` (ending with a user message, or with
  // tool results answering the last assistant message's calls; earlier
  // assistant messages are whatever the caller says was replied) replace the conversation's history
  // (the system prompt of ConversationOptions is not added: send a system message), and the reply
  // to the last one is generated. The KV cache keeps the longest prefix it shares with the last
  // chat this conversation saw, matched on token ids and, for images and videos, on their content
  // (a SHA-256 of pixels or file bytes), so resending a history costs only its new tokens and a
  // different image of the same size is never mistaken for the cached one. Throws InvalidInput for
  // an empty chat, a last message that is not the user's or a tool's, media outside user messages,
  // tool calls outside assistant messages, arguments that are not a JSON object, or an unknown role; Cancelled when ReplyOptions::cancelled says so. A failed or cancelled reply
  // leaves the conversation as it was.
  Reply respond(const std::vector<Message>& messages, const ReplyOptions& options = {},
                const std::function<void(std::string_view)>& on_text = {}, TurnTrace* trace = nullptr);

  // Forgets every turn (keeps the system prompt and the model).
  void reset();
  std::int64_t turns() const;  // user turns answered so far
  std::int64_t cached_tokens() const;
  std::int64_t context_length() const;
  const Model& model() const;

 private:
  std::unique_ptr<ConversationState> state_;
};

}  // namespace q3vl
