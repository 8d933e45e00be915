#include "text/chat_format.h"

#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "text/python_json.h"

namespace q3vl {
namespace {

using OrderedJson = nlohmann::ordered_json;

constexpr std::string_view kImagePlaceholder = "<|vision_start|><|image_pad|><|vision_end|>";
constexpr std::string_view kVideoPlaceholder = "<|vision_start|><|video_pad|><|vision_end|>";
constexpr std::string_view kTurnEnd = "<|im_end|>\n";
constexpr std::string_view kToolsPreambleHead =
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
constexpr std::string_view kToolsPreambleTail =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";

enum class Role { System, User, Assistant, Tool };

// The roles the template renders; anything else it would drop silently, which hides client bugs.
Role role_of(const std::string& role, std::size_t message_index) {
  if (role == "system") return Role::System;
  if (role == "user") return Role::User;
  if (role == "assistant") return Role::Assistant;
  if (role == "tool") return Role::Tool;
  throw InvalidInput("chat message " + std::to_string(message_index) + ": unknown role '" + role +
                     "' (expected system, user, assistant or tool)");
}

// System and assistant turns: only text items count, media is skipped without being numbered.
void append_text_items(std::string& out, const ChatMessage& message) {
  for (const ChatContent& item : message.content) {
    if (item.kind == ChatContent::Kind::Text) out += item.text;
  }
}

struct MediaCounters {
  int images = 0;
  int videos = 0;
};

// User and tool turns: media placeholders and text in order, with no separators; the counters run
// across the whole conversation.
void append_media_items(std::string& out, const ChatMessage& message, bool add_vision_id,
                        MediaCounters& counters) {
  for (const ChatContent& item : message.content) {
    switch (item.kind) {
      case ChatContent::Kind::Image:
        ++counters.images;
        if (add_vision_id) out += "Picture " + std::to_string(counters.images) + ": ";
        out += kImagePlaceholder;
        break;
      case ChatContent::Kind::Video:
        ++counters.videos;
        if (add_vision_id) out += "Video " + std::to_string(counters.videos) + ": ";
        out += kVideoPlaceholder;
        break;
      case ChatContent::Kind::Text:
        out += item.text;
        break;
    }
  }
}

void append_tool_calls(std::string& out, const ChatMessage& message) {
  for (std::size_t call_index = 0; call_index < message.tool_calls.size(); ++call_index) {
    // The template separates calls from each other, and from the text only when there is content.
    if (call_index > 0 || !message.content.empty()) out += '\n';
    const ToolCall& call = message.tool_calls[call_index];
    out += "<tool_call>\n{\"name\": \"";
    out += call.name;
    out += "\", \"arguments\": ";
    out += call.arguments_json;
    out += "}\n</tool_call>";
  }
}

void append_system_preamble(std::string& out, std::span<const ChatMessage> messages, const ChatOptions& options) {
  const bool first_is_system = messages.front().role == "system";
  if (!options.tools_json.empty()) {
    out += "<|im_start|>system\n";
    if (first_is_system) {
      append_text_items(out, messages.front());
      out += "\n\n";
    }
    out += kToolsPreambleHead;
    for (std::size_t tool_index = 0; tool_index < options.tools_json.size(); ++tool_index) {
      const std::string& tool = options.tools_json[tool_index];
      if (tool.empty()) throw InvalidInput("chat tool definition " + std::to_string(tool_index) + " is empty");
      out += '\n';
      out += tool;
    }
    out += kToolsPreambleTail;
  } else if (first_is_system) {
    out += "<|im_start|>system\n";
    append_text_items(out, messages.front());
    out += kTurnEnd;
  }
}

// ---- JSON messages -> ChatMessage ----------------------------------------------------------

const std::string* string_member(const OrderedJson& object, const char* key) {
  const auto found = object.find(key);
  return found != object.end() && found->is_string() ? &found->get_ref<const std::string&>() : nullptr;
}

bool type_is(const OrderedJson& item, std::string_view type) {
  const std::string* item_type = string_member(item, "type");
  return item_type != nullptr && *item_type == type;
}

// Where an image comes from: OpenAI's image_url.url (or a bare image_url string), else HF's
// image / url / path / base64 keys. Empty when none is a string (e.g. a preloaded image).
std::string media_source(const OrderedJson& item, const char* media_key) {
  if (const auto image_url = item.find("image_url"); image_url != item.end()) {
    if (image_url->is_string()) return image_url->get<std::string>();
    if (image_url->is_object()) {
      if (const std::string* url = string_member(*image_url, "url")) return *url;
    }
  }
  for (const char* key : {media_key, "url", "path", "base64"}) {
    if (const std::string* source = string_member(item, key)) return *source;
  }
  return {};
}

// The template tests, in this order: type == 'image' or an 'image'/'image_url' key; type ==
// 'video' or a 'video' key. Returns false when the item is neither.
bool classify_media(const OrderedJson& item, ChatContent& content) {
  if (type_is(item, "image") || item.contains("image") || item.contains("image_url")) {
    content = {ChatContent::Kind::Image, media_source(item, "image")};
    return true;
  }
  if (type_is(item, "video") || item.contains("video")) {
    content = {ChatContent::Kind::Video, media_source(item, "video")};
    return true;
  }
  return false;
}

bool classify_text(const OrderedJson& item, ChatContent& content, const std::string& where) {
  const auto text = item.find("text");
  if (text == item.end()) return false;
  if (!text->is_string()) throw InvalidInput(where + ": \"text\" must be a string, got " + text->dump());
  content = {ChatContent::Kind::Text, text->get<std::string>()};
  return true;
}

ChatContent parse_content_item(const OrderedJson& item, Role role, const std::string& where) {
  if (!item.is_object()) throw InvalidInput(where + ": a content item must be an object, got " + item.dump());
  ChatContent content;
  // System and assistant turns look only at "text" (even on an item typed image); user and tool
  // turns look for media first.
  const bool text_first = role == Role::System || role == Role::Assistant;
  const bool classified = text_first ? classify_text(item, content, where) || classify_media(item, content)
                                     : classify_media(item, content) || classify_text(item, content, where);
  if (!classified) {
    throw InvalidInput(where + ": content item is neither text, image nor video: " + item.dump());
  }
  return content;
}

std::vector<ChatContent> parse_content(const OrderedJson& message, Role role, const std::string& where) {
  const auto content = message.find("content");
  std::vector<ChatContent> items;
  if (content == message.end() || content->is_null()) return items;
  if (content->is_string()) {
    // Empty string content is "no content" for the template's truthiness test.
    if (!content->get_ref<const std::string&>().empty()) items.push_back(text_content(content->get<std::string>()));
    return items;
  }
  if (!content->is_array()) {
    throw InvalidInput(where + ": \"content\" must be a string, a list of items or null, got " + content->dump());
  }
  for (std::size_t item_index = 0; item_index < content->size(); ++item_index) {
    items.push_back(parse_content_item((*content)[item_index], role,
                                       where + ".content[" + std::to_string(item_index) + "]"));
  }
  return items;
}

// A Jinja truthiness test, as `{% if tool_call.function %}` applies it.
bool is_truthy(const OrderedJson& value) {
  if (value.is_null()) return false;
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_string() || value.is_array() || value.is_object()) return !value.empty();
  if (value.is_number_float()) return value.get<double>() != 0.0;
  if (value.is_number()) return value.get<std::int64_t>() != 0;
  return true;
}

ToolCall parse_tool_call(const OrderedJson& item, const std::string& where) {
  if (!item.is_object()) throw InvalidInput(where + ": a tool call must be an object, got " + item.dump());
  // OpenAI/HF wrap the call in "function"; a bare {"name", "arguments"} object works too.
  const auto function = item.find("function");
  const OrderedJson& call = function != item.end() && is_truthy(*function) ? *function : item;
  if (!call.is_object()) throw InvalidInput(where + ": \"function\" must be an object, got " + call.dump());
  const std::string* name = string_member(call, "name");
  if (name == nullptr) throw InvalidInput(where + ": tool call needs a string \"name\"");
  const auto arguments = call.find("arguments");
  if (arguments == call.end()) throw InvalidInput(where + ": tool call '" + *name + "' has no \"arguments\"");
  // String arguments (OpenAI) are already JSON text and go in verbatim; objects go through tojson.
  if (arguments->is_string()) return {*name, arguments->get<std::string>(), true};
  return {*name, dump_json_like_python(*arguments), false};
}

ChatMessage parse_message(const OrderedJson& message, std::size_t message_index) {
  const std::string where = "messages[" + std::to_string(message_index) + "]";
  if (!message.is_object()) throw InvalidInput(where + ": a message must be an object, got " + message.dump());
  const std::string* role_name = string_member(message, "role");
  if (role_name == nullptr) throw InvalidInput(where + ": message needs a string \"role\"");
  const Role role = role_of(*role_name, message_index);

  ChatMessage parsed{*role_name, parse_content(message, role, where), {}, {}};
  if (const std::string* reasoning = string_member(message, "reasoning_content"); reasoning != nullptr && role == Role::Assistant) {
    parsed.reasoning = *reasoning;
  }
  const auto tool_calls = message.find("tool_calls");
  if (tool_calls != message.end() && !tool_calls->is_null()) {
    if (!tool_calls->is_array()) throw InvalidInput(where + ": \"tool_calls\" must be a list, got " + tool_calls->dump());
    if (!tool_calls->empty() && role != Role::Assistant) {
      throw InvalidInput(where + ": only assistant messages can carry tool calls, not '" + *role_name + "'");
    }
    for (std::size_t call_index = 0; call_index < tool_calls->size(); ++call_index) {
      parsed.tool_calls.push_back(
          parse_tool_call((*tool_calls)[call_index], where + ".tool_calls[" + std::to_string(call_index) + "]"));
    }
  }
  return parsed;
}

}  // namespace

std::string render_chat(std::span<const ChatMessage> messages, const ChatOptions& options) {
  // The template indexes messages[0] unconditionally and fails on an empty conversation.
  if (messages.empty()) throw InvalidInput("cannot render a chat without messages");
  std::vector<Role> roles;
  roles.reserve(messages.size());
  for (std::size_t index = 0; index < messages.size(); ++index) {
    roles.push_back(role_of(messages[index].role, index));
    if (roles.back() != Role::Assistant && !messages[index].tool_calls.empty()) {
      throw InvalidInput("chat message " + std::to_string(index) + ": only assistant messages can carry tool calls, not '" +
                         messages[index].role + "'");
    }
  }

  std::string out;
  append_system_preamble(out, messages, options);
  MediaCounters counters;
  for (std::size_t index = 0; index < messages.size(); ++index) {
    const ChatMessage& message = messages[index];
    switch (roles[index]) {
      case Role::System:
        break;  // the first one went into the preamble; later ones the template drops
      case Role::User:
        out += "<|im_start|>user\n";
        append_media_items(out, message, options.add_vision_id, counters);
        out += kTurnEnd;
        break;
      case Role::Assistant:
        out += "<|im_start|>assistant\n";
        append_text_items(out, message);
        append_tool_calls(out, message);
        out += kTurnEnd;
        break;
      case Role::Tool: {
        // A run of tool messages forms one user turn; neighbours are judged by role only.
        const bool opens_turn = index == 0 || roles[index - 1] != Role::Tool;
        const bool closes_turn = index + 1 == messages.size() || roles[index + 1] != Role::Tool;
        if (opens_turn) out += "<|im_start|>user";
        out += "\n<tool_response>\n";
        append_media_items(out, message, options.add_vision_id, counters);
        out += "\n</tool_response>";
        if (closes_turn) out += kTurnEnd;
        break;
      }
    }
  }
  if (options.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

ChatContent text_content(std::string text) { return {ChatContent::Kind::Text, std::move(text)}; }
ChatContent image_content(std::string source) { return {ChatContent::Kind::Image, std::move(source)}; }
ChatContent video_content(std::string source) { return {ChatContent::Kind::Video, std::move(source)}; }

ChatMessage user_message(std::vector<ChatContent> content) { return {"user", std::move(content), {}, {}}; }

ChatMessage text_message(std::string role, std::string text) {
  ChatMessage message{std::move(role), {}, {}, {}};
  if (!text.empty()) message.content.push_back(text_content(std::move(text)));
  return message;
}

std::vector<ChatMessage> parse_chat_messages(const nlohmann::ordered_json& messages) {
  if (!messages.is_array()) throw InvalidInput("chat messages must be a JSON list, got " + messages.dump());
  std::vector<ChatMessage> parsed;
  parsed.reserve(messages.size());
  for (std::size_t index = 0; index < messages.size(); ++index) parsed.push_back(parse_message(messages[index], index));
  return parsed;
}

std::vector<ChatMessage> parse_chat_messages(const nlohmann::json& messages) {
  return parse_chat_messages(nlohmann::ordered_json(messages));
}

std::vector<std::string> parse_chat_tools(const nlohmann::ordered_json& tools) {
  if (tools.is_null()) return {};
  if (!tools.is_array()) throw InvalidInput("chat tools must be a JSON list, got " + tools.dump());
  std::vector<std::string> tool_texts;
  for (std::size_t index = 0; index < tools.size(); ++index) {
    if (!tools[index].is_object()) {
      throw InvalidInput("tools[" + std::to_string(index) + "]: a tool definition must be an object, got " +
                         tools[index].dump());
    }
    tool_texts.push_back(dump_json_like_python(tools[index]));
  }
  return tool_texts;
}

}  // namespace q3vl
