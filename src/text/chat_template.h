#pragma once
// A package's chat template, applied to a chat: the reference Qwen3-VL Instruct template
// (assets/qwen3-vl/chat_template.json) through the native renderer (render_chat, identical to
// transformers on the fixture corpus: tests/text/chat_template_test.cpp), any other template
// through the Jinja interpreter (src/text/jinja) with the chat as Hugging Face-style JSON.
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "text/chat_format.h"

namespace q3vl {

namespace jinja {
class Template;
}

class ChatTemplate {
 public:
  enum class Engine { Auto, Jinja };
  // Throws InvalidInput naming the line of a template the interpreter cannot parse.
  explicit ChatTemplate(std::string source, Engine engine = Engine::Auto);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  static ChatTemplate reference();  // the Qwen3-VL Instruct template
  bool native() const { return jinja_ == nullptr; }
  const std::string& source() const { return source_; }

  // What transformers' apply_chat_template(messages, tools=..., add_generation_prompt=...,
  // add_vision_id=..., tokenize=False) gives.
  std::string render(std::span<const ChatMessage> messages, const ChatOptions& options = {}) const;

 private:
  std::string source_;
  std::unique_ptr<const jinja::Template> jinja_;
};

// A package's or checkpoint's tokenizer_config.json "chat_template" (a string, or HF's list of
// named templates: the one named "default"); the reference template where the file or the key is
// missing. Throws InvalidInput naming the file for another shape or a template that cannot parse.
ChatTemplate load_chat_template(const std::filesystem::path& tokenizer_config_json);

// The chat as the template sees it: {"role", "content"} objects, content a string when it is one
// text item, else a list of {"type": "text", "text"} / {"type": "image"} / {"type": "video"}
// items; assistant tool calls as {"type": "function", "function": {"name", "arguments"}} with
// object arguments (a string where the message gave a string).
nlohmann::ordered_json chat_messages_as_json(std::span<const ChatMessage> messages);

}  // namespace q3vl
