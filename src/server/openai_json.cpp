#include "server/openai_json.h"

namespace q3vl::server {
namespace {

nlohmann::json token_json(const TokenLogprob& token) {
  nlohmann::json bytes = nlohmann::json::array();
  for (unsigned char byte : token.bytes) bytes.push_back(static_cast<int>(byte));
  // `token` is text: a partial UTF-8 character becomes U+FFFD when serialised (to_wire); `bytes` is exact.
  return {{"token", token.bytes}, {"logprob", token.logprob}, {"bytes", std::move(bytes)}};
}

// What every object of one completion starts with.
nlohmann::json envelope(const CompletionIdentity& identity, const char* object) {
  return {{"id", identity.id},
          {"object", object},
          {"created", identity.created},
          {"model", identity.model},
          {"system_fingerprint", identity.system_fingerprint}};
}

}  // namespace

nlohmann::json usage_json(std::int64_t prompt_tokens, std::int64_t cached_tokens, std::int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

nlohmann::json logprobs_json(std::span<const TokenChoice> tokens) {
  nlohmann::json content = nlohmann::json::array();
  for (const TokenChoice& choice : tokens) {
    nlohmann::json entry = token_json(choice.chosen);
    nlohmann::json top = nlohmann::json::array();
    for (const TokenLogprob& alternative : choice.top) top.push_back(token_json(alternative));
    entry["top_logprobs"] = std::move(top);
    content.push_back(std::move(entry));
  }
  return {{"content", std::move(content)}, {"refusal", nullptr}};
}

namespace {

nlohmann::json tool_call_json(const FunctionCall& call) {
  return {{"id", call.id}, {"type", "function"}, {"function", {{"name", call.name}, {"arguments", call.arguments}}}};
}

}  // namespace

nlohmann::json delta_json(const ReplyDelta& delta) {
  switch (delta.kind) {
    case ReplyDelta::Kind::Reasoning: return {{"reasoning_content", delta.text}};
    case ReplyDelta::Kind::Content: return {{"content", delta.text}};
    case ReplyDelta::Kind::ToolCall: break;
  }
  nlohmann::json call = tool_call_json(*delta.call);
  call["index"] = delta.call_index;
  return {{"tool_calls", nlohmann::json::array({std::move(call)})}};
}

nlohmann::json completion_json(const CompletionIdentity& identity, const Reply& reply, bool with_logprobs) {
  nlohmann::json message = {{"role", "assistant"},
                            {"content", reply.content.empty() && !reply.tool_calls.empty() ? nlohmann::json(nullptr) : nlohmann::json(reply.content)},
                            {"refusal", nullptr}};
  if (!reply.reasoning.empty()) message["reasoning_content"] = reply.reasoning;
  if (!reply.tool_calls.empty()) {
    nlohmann::json calls = nlohmann::json::array();
    for (const FunctionCall& call : reply.tool_calls) calls.push_back(tool_call_json(call));
    message["tool_calls"] = std::move(calls);
  }
  nlohmann::json choice = {{"index", 0},
                           {"message", std::move(message)},
                           {"logprobs", with_logprobs ? logprobs_json(reply.logprobs) : nlohmann::json(nullptr)},
                           {"finish_reason", reply.finish_reason}};
  nlohmann::json body = envelope(identity, "chat.completion");
  body["choices"] = nlohmann::json::array({std::move(choice)});
  body["usage"] = usage_json(reply.prompt_tokens, reply.cached_tokens, static_cast<std::int64_t>(reply.tokens.size()));
  return body;
}

nlohmann::json chunk_json(const CompletionIdentity& identity, const nlohmann::json& delta,
                          const std::optional<std::string>& finish_reason, const nlohmann::json& logprobs) {
  nlohmann::json choice = {{"index", 0},
                           {"delta", delta},
                           {"logprobs", logprobs},
                           {"finish_reason", finish_reason ? nlohmann::json(*finish_reason) : nlohmann::json(nullptr)}};
  nlohmann::json body = envelope(identity, "chat.completion.chunk");
  body["choices"] = nlohmann::json::array({std::move(choice)});
  body["usage"] = nullptr;
  return body;
}

nlohmann::json usage_chunk_json(const CompletionIdentity& identity, const nlohmann::json& usage) {
  nlohmann::json body = envelope(identity, "chat.completion.chunk");
  body["choices"] = nlohmann::json::array();
  body["usage"] = usage;
  return body;
}

nlohmann::json error_json(const ApiError& error) {
  return {{"error",
           {{"message", error.what()},
            {"type", error.type()},
            {"param", error.param().empty() ? nlohmann::json(nullptr) : nlohmann::json(error.param())},
            {"code", error.code().empty() ? nlohmann::json(nullptr) : nlohmann::json(error.code())}}}};
}

std::string to_wire(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string sse_event(const nlohmann::json& value) { return "data: " + to_wire(value) + "\n\n"; }

}  // namespace q3vl::server
