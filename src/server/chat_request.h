#pragma once
// The body of POST /v1/chat/completions, parsed and checked before any model work: OpenAI's
// request shape (and the common extensions), with every malformed or out-of-range value refused as
// an ApiError naming the field (`messages[2].content[0].image_url.url`). Pure: no files, no
// network, no model; media stay references (URLs) until resolve_media() turns them into pixels.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "q3vl/conversation.h"

#include "server/api_error.h"

namespace q3vl::server {

struct RequestPart {
  enum class Kind { Text, Image, Video };
  Kind kind = Kind::Text;
  std::string text;  // Text: the text. Image/Video: the URL as sent (data:, file:, a path, http...)
};

struct RequestMessage {
  std::string role;                  // system, user, assistant or tool
  std::vector<RequestPart> content;  // a string content is one Text part; null/"" is none
  std::vector<FunctionCall> tool_calls;  // assistant: arguments as the JSON text the client sent
  std::string reasoning;                 // assistant: reasoning_content
  std::string tool_call_id;              // tool
};

// What one request may ask for; exceeding any is a 400 naming the limit (the server's flags set them).
struct RequestLimits {
  std::int64_t max_messages = 256;
  std::int64_t max_media_items = 16;        // image_url + video_url parts over all messages
  std::int64_t max_stop_strings = 16;
  std::int64_t max_stop_string_bytes = 256;
  std::int64_t max_tokens_cap = 4096;       // a larger max_tokens is refused, not clamped
  std::int64_t max_top_logprobs = 20;
  std::size_t max_schema_bytes = 64 * 1024;  // response_format's JSON schema, as compact JSON
  std::int64_t max_tools = 128;
  std::size_t max_tools_bytes = 256 * 1024;  // all tool definitions, as compact JSON
};

struct ChatRequest {
  std::vector<RequestMessage> messages;
  std::string model;  // echoed back; any value is accepted (one model per server)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::optional<std::int64_t> max_tokens;  // max_completion_tokens, else max_tokens
  std::optional<double> temperature, top_p, min_p, repetition_penalty, presence_penalty, frequency_penalty;
  std::optional<std::int64_t> top_k;
  std::optional<std::uint64_t> seed;
  std::vector<std::string> stop;  // a string or a list of strings
  bool logprobs = false;
  std::optional<std::int64_t> top_logprobs;
  ResponseFormat response_format;  // response_format: text, json_object or json_schema
  std::vector<std::string> tools;  // each tool definition as compact JSON (key order kept)
  ToolChoice tool_choice;          // "auto" unless the request says otherwise
  std::string chat_template_kwargs;  // vLLM's extension: more template variables, a JSON object's text
  // Extensions (documented in the README): the per-image pixel budget, as Qwen's processor names it.
  std::optional<std::int64_t> min_pixels, max_pixels;
};

// Throws ApiError (status 400, `param` = the field path) for malformed JSON, wrong types, unknown
// roles or part types, out-of-range values, n != 1, a limit exceeded, tools that are not functions,
// or a tool_choice naming no offered tool (or whose parameters constrained decoding cannot hold). Unknown top-level fields
// are ignored, as OpenAI's API does.
ChatRequest parse_chat_request(std::string_view body, const RequestLimits& limits = {});

}  // namespace q3vl::server
