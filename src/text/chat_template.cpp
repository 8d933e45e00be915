#include "text/chat_template.h"

#include <nlohmann/json.hpp>

#include "model/tokenizer_files.h"
#include "q3vl/error.h"
#include "text/jinja/template.h"
#include "util/files.h"
#include "util/json_fields.h"

namespace q3vl {

using OrderedJson = nlohmann::ordered_json;

ChatTemplate::ChatTemplate(std::string source, Engine engine) : source_(std::move(source)) {
  if (engine == Engine::Auto && source_ == reference_chat_template()) return;  // native
  jinja_ = std::make_unique<const jinja::Template>(source_);
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

ChatTemplate ChatTemplate::reference() { return ChatTemplate(reference_chat_template()); }

ChatTemplate load_chat_template(const std::filesystem::path& tokenizer_config_json) {
  if (!std::filesystem::exists(tokenizer_config_json)) return ChatTemplate::reference();
  const OrderedJson config = OrderedJson::parse(read_text_file(tokenizer_config_json), nullptr, false);
  const std::string where = tokenizer_config_json.string();
  if (config.is_discarded() || !config.is_object()) throw InvalidInput(where + ": not a JSON object");
  const auto found = config.find("chat_template");
  if (found == config.end() || found->is_null()) return ChatTemplate::reference();
  std::string source;
  if (found->is_string()) {
    source = found->get<std::string>();
  } else if (found->is_array()) {
    for (const OrderedJson& entry : *found) {
      if (entry.is_object() && entry.value("name", OrderedJson()) == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        source = entry["template"].get<std::string>();
      }
    }
    if (source.empty()) throw InvalidInput(where + ": \"chat_template\" lists no template named \"default\"");
  } else {
    throw InvalidInput(where + ": \"chat_template\" must be a string or a list of named templates");
  }
  try {
    return ChatTemplate(std::move(source));
  } catch (const InvalidInput& error) {
    throw InvalidInput(where + ": " + error.what());
  }
}

OrderedJson chat_messages_as_json(std::span<const ChatMessage> messages) {
  OrderedJson out = OrderedJson::array();
  for (const ChatMessage& message : messages) {
    OrderedJson m = OrderedJson::object();
    m["role"] = message.role;
    const auto& items = message.content;
    if (items.empty()) {
      m["content"] = "";
    } else if (items.size() == 1 && items[0].kind == ChatContent::Kind::Text && !items[0].text.empty()) {
      m["content"] = items[0].text;
    } else {
      // A list keeps what a string cannot: one empty text item is still a non-empty (true) list.
      OrderedJson list = OrderedJson::array();
      for (const ChatContent& item : items) {
        OrderedJson entry = OrderedJson::object();
        switch (item.kind) {
          case ChatContent::Kind::Text:
            entry["type"] = "text";
            entry["text"] = item.text;
            break;
          case ChatContent::Kind::Image:
            entry["type"] = "image";
            if (!item.text.empty()) entry["image"] = item.text;
            break;
          case ChatContent::Kind::Video:
            entry["type"] = "video";
            if (!item.text.empty()) entry["video"] = item.text;
            break;
        }
        list.push_back(std::move(entry));
      }
      m["content"] = std::move(list);
    }
    if (!message.reasoning.empty()) m["reasoning_content"] = message.reasoning;
    if (!message.tool_calls.empty()) {
      OrderedJson calls = OrderedJson::array();
      for (const ToolCall& call : message.tool_calls) {
        OrderedJson arguments = call.arguments_given_as_text ? OrderedJson(call.arguments_json)
                                                              : OrderedJson::parse(call.arguments_json);
        calls.push_back({{"type", "function"}, {"function", {{"name", call.name}, {"arguments", std::move(arguments)}}}});
      }
      m["tool_calls"] = std::move(calls);
    }
    out.push_back(std::move(m));
  }
  return out;
}

namespace {

// The caller's variables, checked: an object that does not replace what the chat itself gives.
OrderedJson extra_variables(const std::string& text) {
  if (text.empty()) return OrderedJson::object();
  OrderedJson extra = parse_ordered_json_bounded(text, "the chat template's variables");
  if (!extra.is_object()) throw InvalidInput("the chat template's variables must be a JSON object");
  for (const char* reserved : {"messages", "tools", "documents", "add_generation_prompt"}) {
    if (extra.contains(reserved)) {
      throw InvalidInput(std::string("the chat template's variables cannot set \"") + reserved + "\": it comes from the request");
    }
  }
  return extra;
}

}  // namespace

std::string ChatTemplate::render(std::span<const ChatMessage> messages, const ChatOptions& options) const {
  const OrderedJson extra = extra_variables(options.extra_variables_json);
  if (native()) {
    ChatOptions native_options = options;
    if (const auto vision_id = extra.find("add_vision_id"); vision_id != extra.end()) {
      if (!vision_id->is_boolean()) throw InvalidInput("the chat template's variable add_vision_id must be true or false");
      native_options.add_vision_id = vision_id->get<bool>();
    }
    return render_chat(messages, native_options);
  }
  if (messages.empty()) throw InvalidInput("a chat needs at least one message");
  OrderedJson variables = OrderedJson::object();
  variables["messages"] = chat_messages_as_json(messages);
  if (options.tools_json.empty()) {
    variables["tools"] = nullptr;
  } else {
    OrderedJson tools = OrderedJson::array();
    for (const std::string& tool : options.tools_json) tools.push_back(OrderedJson::parse(tool));
    variables["tools"] = std::move(tools);
  }
  variables["documents"] = nullptr;
  variables["add_generation_prompt"] = options.add_generation_prompt;
  variables["add_vision_id"] = options.add_vision_id;
  for (const auto& [name, value] : extra.items()) variables[name] = value;
  return jinja_->render(variables);
}

}  // namespace q3vl
