// libFuzzer target for what a user types: arbitrary bytes as chat turns (and as a JSON message
// list) through the chat format and the real Qwen tokenizer. Every input must render and encode
// to ids inside the vocabulary, or be rejected with a q3vl::Error (invalid UTF-8, say); another
// exception, a crash or a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "text/chat_format.h"
#include "text/tokenizer.h"

#ifndef Q3VL_TOKENIZER_DIR
#define Q3VL_TOKENIZER_DIR ""
#endif

namespace {

const q3vl::Tokenizer& qwen_tokenizer() {
  static const q3vl::Tokenizer tokenizer =
      q3vl::Tokenizer::load(std::filesystem::path(Q3VL_TOKENIZER_DIR) / "tokenizer.json");
  return tokenizer;
}

void encode_checked(const std::string& text) {
  const q3vl::Tokenizer& tokenizer = qwen_tokenizer();
  for (const std::int64_t id : tokenizer.encode(text)) {
    if (id < 0 || id >= tokenizer.vocab_size()) __builtin_trap();
  }
}

// Byte 0 picks the shape (system prompt, images per user turn); the rest, split at 0x1E, are the
// turns' texts, alternating user and assistant.
std::vector<q3vl::ChatMessage> turns_from(std::string_view bytes) {
  const unsigned shape = bytes.empty() ? 0 : static_cast<unsigned char>(bytes[0]);
  if (!bytes.empty()) bytes.remove_prefix(1);
  std::vector<q3vl::ChatMessage> messages;
  bool user = true;
  for (std::size_t start = 0; start <= bytes.size();) {
    std::size_t end = bytes.find('\x1e', start);
    if (end == std::string_view::npos) end = bytes.size();
    const std::string text(bytes.substr(start, end - start));
    if (messages.empty() && (shape & 1) != 0) {
      messages.push_back(q3vl::text_message("system", text));
    } else if (user) {
      std::vector<q3vl::ChatContent> content(static_cast<std::size_t>((shape >> 1) % 3), q3vl::image_content());
      content.push_back(q3vl::text_content(text));
      messages.push_back(q3vl::user_message(std::move(content)));
      user = false;
    } else {
      messages.push_back(q3vl::text_message("assistant", text));
      user = true;
    }
    start = end + 1;
  }
  return messages;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    encode_checked(q3vl::render_chat(turns_from(bytes)));
  } catch (const q3vl::Error&) {
  }
  const nlohmann::ordered_json json = nlohmann::ordered_json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  try {
    encode_checked(q3vl::render_chat(q3vl::parse_chat_messages(json)));
  } catch (const q3vl::Error&) {
  }
  return 0;
}
