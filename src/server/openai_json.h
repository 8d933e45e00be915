#pragma once
// OpenAI's response shapes for chat completions: the completion object, the streamed
// chat.completion.chunk events, usage, log probabilities and the error object.
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "q3vl/conversation.h"
#include "server/api_error.h"

namespace q3vl::server {

// What every object of one completion shares.
struct CompletionIdentity {
  std::string id;  // "chatcmpl-..."
  std::int64_t created = 0;  // Unix seconds
  std::string model;
  std::string system_fingerprint;
};

nlohmann::json usage_json(std::int64_t prompt_tokens, std::int64_t cached_tokens, std::int64_t completion_tokens);
// {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]}.
nlohmann::json logprobs_json(std::span<const TokenChoice> tokens);

// A streamed piece of the reply as a chunk's delta: {"content"}, {"reasoning_content"}, or
// {"tool_calls": [{"index", "id", "type", "function": {"name", "arguments"}}]} (a whole call).
nlohmann::json delta_json(const ReplyDelta& delta);

// The non-streamed reply: content (null when the reply is only tool calls), reasoning_content
// (when the model reasoned, as vLLM and llama-server name it) and tool_calls.
nlohmann::json completion_json(const CompletionIdentity& identity, const Reply& reply, bool with_logprobs);

// One streamed chunk: `delta` ({"role":...} or {"content":...} or {}), an optional finish reason
// and log probabilities; "usage": null unless `usage` is given (then choices is empty).
nlohmann::json chunk_json(const CompletionIdentity& identity, const nlohmann::json& delta,
                          const std::optional<std::string>& finish_reason, const nlohmann::json& logprobs = nullptr);
nlohmann::json usage_chunk_json(const CompletionIdentity& identity, const nlohmann::json& usage);

nlohmann::json error_json(const ApiError& error);

// JSON text for the wire: invalid UTF-8 (a token's partial character) replaced, never thrown on.
std::string to_wire(const nlohmann::json& value);
// A server-sent event carrying `value`: "data: {...}\n\n".
std::string sse_event(const nlohmann::json& value);

}  // namespace q3vl::server
