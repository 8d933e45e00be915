#pragma once
// The Qwen3-VL Instruct chat format, rendered natively: render_chat() gives, character for
// character, the text Hugging Face's apply_chat_template(..., tokenize=False) produces with
// assets/qwen3-vl/chat_template.json, without a Jinja engine. parse_chat_messages() turns
// HF-style or OpenAI-style JSON messages into ChatMessage values the way the template reads them.
//
// Template behaviour worth knowing (all reproduced here):
// * No default system prompt. Only the *first* message can be a system message that shows up;
//   system messages anywhere else are dropped silently.
// * System and assistant turns render only their text items; images/videos in them are ignored
//   and not counted for "Picture N: " / "Video N: ".
// * Assistant text is emitted verbatim: no <think> stripping, reasoning fields are ignored.
// * Consecutive tool messages share one user turn of <tool_response> blocks.
// Deliberate differences from the template: an unknown role, no messages at all, or tool calls on
// a non-assistant message are errors (InvalidInput) instead of being silently dropped or failing
// deep inside Jinja.
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "text/python_json.h"  // dump_json_like_python, the template's tojson

namespace q3vl {

struct ChatContent {
  enum class Kind { Text, Image, Video };
  Kind kind = Kind::Text;
  // Text: the text itself. Image/Video: where the media comes from (URL, path, data URL) when
  // known; the template never renders it, the image pipeline may use it.
  std::string text;
};

struct ToolCall {
  std::string name;
  std::string arguments_json;  // emitted verbatim after "arguments": (already JSON text)
  // The message gave the arguments as a string (OpenAI), not an object: a template sees a string.
  bool arguments_given_as_text = false;
};

struct ChatMessage {
  std::string role;  // system, user, assistant or tool
  // A non-empty string content is one Text item; empty content ("" or []) is no item. The
  // distinction matters: the template puts a newline before the first tool call only when the
  // content is "truthy", and a list holding one empty text item is truthy while "" is not.
  std::vector<ChatContent> content;
  std::vector<ToolCall> tool_calls;  // assistant only
  // Assistant: a Thinking model's reasoning, the template's `reasoning_content` (the native
  // renderer, like the Instruct template, never shows it).
  std::string reasoning;
};

struct ChatOptions {
  bool add_generation_prompt = true;
  bool add_vision_id = false;             // prefix media with "Picture N: " / "Video N: "
  std::vector<std::string> tools_json;    // one JSON text per tool definition, emitted verbatim
  // More template variables, as a JSON object's text (HF's apply_chat_template keyword arguments,
  // e.g. {"enable_thinking": false}); the native renderer reads only add_vision_id, as the
  // Instruct template does.
  std::string extra_variables_json;
};

// Throws InvalidInput for no messages, an unknown role, tool calls outside assistant turns, or an
// empty tool definition.
std::string render_chat(std::span<const ChatMessage> messages, const ChatOptions& options = {});

// Helpers for the common case.
ChatContent text_content(std::string text);
ChatContent image_content(std::string source = {});
ChatContent video_content(std::string source = {});
ChatMessage user_message(std::vector<ChatContent> content);
ChatMessage text_message(std::string role, std::string text);  // "" gives no content item

// JSON array of messages, HF style ({"type":"image"}, {"type":"text","text":...}, "image"/"url"/
// "path" keys) or OpenAI style ({"type":"image_url","image_url":{"url":...}}, tool_calls with
// "function" and string "arguments"). Content may be a string, a list of items, or absent/null
// (null is read as absent: the template itself fails on null, OpenAI clients send it with tool
// calls). Items are classified in the template's order, which depends on the role (user/tool:
// image, then video, then text; system/assistant: text, then media that is ignored). Non-string
// tool-call arguments are serialised like the template's tojson (Python json.dumps), so keep key
// order by passing ordered_json; the nlohmann::json overload works on sorted keys. Anything the
// template would misread (non-object items, non-string text, unknown item types, unknown roles)
// throws InvalidInput naming the message and item.
std::vector<ChatMessage> parse_chat_messages(const nlohmann::ordered_json& messages);
std::vector<ChatMessage> parse_chat_messages(const nlohmann::json& messages);

// JSON array of tool definitions -> ChatOptions::tools_json, each serialised like tojson.
std::vector<std::string> parse_chat_tools(const nlohmann::ordered_json& tools);

}  // namespace q3vl
