#include "cli/reply_output.h"

#include <cerrno>
#include <cstring>
#include <string>

#include <unistd.h>

#include <nlohmann/json.hpp>

namespace q3vl::cli {

void write_reply(std::string_view text) {
  errno = 0;
  const bool written = std::fwrite(text.data(), 1, text.size(), stdout) == text.size();
  if (!written || std::fflush(stdout) != 0) {
    const int error = errno;
    std::clearerr(stdout);  // the error is reported here, once, not again at exit
    throw OutputError(std::string("cannot write the reply to standard output: ") +
                (error != 0 ? std::strerror(error) : "write error"));
  }
}

bool finish_stdout() {
  errno = 0;
  if (std::fflush(stdout) == 0 && std::ferror(stdout) == 0) return true;
  const int error = errno;
  std::fprintf(stderr, "q3vl: error: cannot write to standard output: %s\n",
               error != 0 ? std::strerror(error) : "write error");
  return false;
}

}  // namespace q3vl::cli

namespace q3vl::cli {

ReplyPrinter::ReplyPrinter(bool hide_thinking) : hide_thinking_(hide_thinking), terminal_(isatty(fileno(stdout)) != 0) {}

void ReplyPrinter::operator()(const ReplyDelta& delta) {
  if (delta.kind == ReplyDelta::Kind::Reasoning && hide_thinking_) return;
  // A blank line where reasoning ends and the answer or a call begins, a line break before a call.
  if (printed_ && (delta.kind != last_ || delta.kind == ReplyDelta::Kind::ToolCall)) {
    write_reply(last_ == ReplyDelta::Kind::Reasoning ? "\n\n" : "\n");
  }
  switch (delta.kind) {
    case ReplyDelta::Kind::Reasoning: {
      constexpr std::string_view kDim = "\x1b[2m", kNormal = "\x1b[0m";
      if (terminal_) {
        write_reply(std::string(kDim) + std::string(delta.text) + std::string(kNormal));
      } else {
        write_reply(delta.text);
      }
      break;
    }
    case ReplyDelta::Kind::Content: write_reply(delta.text); break;
    case ReplyDelta::Kind::ToolCall:
      write_reply("<tool_call>{\"name\": " + nlohmann::json(delta.call->name).dump() + ", \"arguments\": " + delta.call->arguments +
                  "}</tool_call>");
      break;
  }
  last_ = delta.kind;
  printed_ = true;
}

}  // namespace q3vl::cli
