// libFuzzer target for a package's chat template (tokenizer_config.json is a user's file): the
// bytes are a template, rendered with a chat of every kind of message (system, user with an image
// and a video, assistant with tool calls, tool), tools and extra arguments. Each input must render
// or be rejected with a q3vl::Error (a syntax error, an unsupported construct, a limit); another
// exception, a crash, a hang or a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "text/jinja/template.h"

namespace {

const nlohmann::ordered_json& variables() {
  static const nlohmann::ordered_json value = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are terse."},
      {"role": "user", "content": [{"type": "image"}, {"type": "video"}, {"type": "text", "text": "What is this?"}]},
      {"role": "assistant", "content": "", "reasoning_content": "look",
       "tool_calls": [{"type": "function", "function": {"name": "zoom", "arguments": {"box": [1, 2.5, null], "ok": true}}}]},
      {"role": "tool", "content": "{\"done\": 1}"},
      {"role": "user", "content": "<tool_response>x</tool_response>"}
    ],
    "tools": [{"type": "function", "function": {"name": "zoom", "description": "Zoom in.",
               "parameters": {"type": "object", "properties": {"box": {"type": "array", "items": {"type": "number"}}},
                              "required": ["box"]}}}],
    "documents": null,
    "add_generation_prompt": true,
    "add_vision_id": true,
    "enable_thinking": false,
    "bos_token": "<s>"
  })");
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  try {
    const q3vl::jinja::Template compiled(source);
    (void)compiled.render(variables());
  } catch (const q3vl::Error&) {
  }
  return 0;
}
