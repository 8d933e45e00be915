#pragma once
// The reply's way to standard output. Every write is checked: a reply that cannot be written (a
// full disk, a closed pipe with SIGPIPE ignored) is an error, never a silent exit 0.
#include <cstdio>
#include <string_view>

#include "q3vl/conversation.h"
#include "q3vl/error.h"

namespace q3vl::cli {

// Standard output is gone: no later turn can be shown either, so chat stops on it.
class OutputError : public Error {
 public:
  using Error::Error;
};

// Writes `text` to stdout and flushes (the reply streams); throws OutputError "cannot write the
// reply to standard output: <reason>" on failure.
void write_reply(std::string_view text);

// Flushes stdout and reports any write error it has seen; main calls it before exiting 0.
// Returns false (and prints the message) on failure.
bool finish_stdout();

// Prints a reply as it streams (ReplyOptions::on_delta): a Thinking model's reasoning dimmed on a
// terminal (plain when stdout is a file or a pipe) or not at all, then a blank line and the answer;
// each tool call on a line of its own as `<tool_call>{"name": ..., "arguments": ...}</tool_call>`.
class ReplyPrinter {
 public:
  explicit ReplyPrinter(bool hide_thinking);
  void operator()(const ReplyDelta& delta);

 private:
  bool hide_thinking_;
  bool terminal_;
  ReplyDelta::Kind last_ = ReplyDelta::Kind::Content;
  bool printed_ = false;  // anything of this reply
};

}  // namespace q3vl::cli
