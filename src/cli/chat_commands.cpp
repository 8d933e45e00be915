#include "cli/chat_commands.h"

namespace q3vl::cli {

std::string chat_commands_hint() {
  return "commands: /image PATH, /video PATH, /reset, /quit, /help; start a line with // to send text beginning with /";
}

ChatLine parse_chat_line(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.rfind("//", 0) == 0) return {ChatLine::Kind::Text, line.substr(1)};
  if (line.empty() || line.front() != '/') return {ChatLine::Kind::Text, line};
  const std::size_t name_end = line.find_first_of(" \t");
  const std::string name = line.substr(0, name_end);
  std::string argument;
  if (name_end != std::string::npos) {
    const std::size_t start = line.find_first_not_of(" \t", name_end);
    if (start != std::string::npos) argument = line.substr(start);
  }
  auto invalid = [](const std::string& what) { return ChatLine{ChatLine::Kind::Invalid, what + "; " + chat_commands_hint()}; };
  if (name == "/image") {
    if (argument.empty()) return invalid("/image needs a file: /image PATH");
    return {ChatLine::Kind::Image, argument};
  }
  if (name == "/video") {
    if (argument.empty()) return invalid("/video needs a file: /video PATH");
    return {ChatLine::Kind::Video, argument};
  }
  ChatLine::Kind kind = ChatLine::Kind::Invalid;
  if (name == "/reset") kind = ChatLine::Kind::Reset;
  if (name == "/quit" || name == "/exit") kind = ChatLine::Kind::Quit;
  if (name == "/help") kind = ChatLine::Kind::Help;
  if (kind == ChatLine::Kind::Invalid) return invalid("unknown command " + name);
  if (!argument.empty()) return invalid(name + " takes no argument");
  return {kind, ""};
}

}  // namespace q3vl::cli
