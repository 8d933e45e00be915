#pragma once
// One line of `q3vl chat` input: text for the model, or a command. Commands are lines that start
// with '/': /image PATH, /video PATH, /reset, /quit (or /exit), /help. A line starting with "//" is text that
// starts with '/' (one slash removed). A trailing '\r' (CRLF input) is dropped.
#include <string>

namespace q3vl::cli {

struct ChatLine {
  enum class Kind { Text, Image, Video, Reset, Quit, Help, Invalid };
  Kind kind = Kind::Text;
  std::string text;  // Text: the message; Image, Video: the path; Invalid: what is wrong, with the hint
};

ChatLine parse_chat_line(std::string line);

// "commands: /image PATH, /reset, /quit, /help; start a line with // to send text beginning with /"
std::string chat_commands_hint();

}  // namespace q3vl::cli
