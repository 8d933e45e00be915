// `q3vl chat` input lines: commands start with '/', "//" escapes a literal slash, CRLF is text's
// line end, and every mistake in a command is reported with the list of commands.
#include "cli/chat_commands.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace q3vl::cli {
namespace {

using Kind = ChatLine::Kind;

struct Case {
  std::string line;
  Kind kind;
  std::string text;  // Text/Image: the exact payload; Invalid: a part of the message
};

TEST(ChatCommands, EveryLineKind) {
  const std::vector<Case> cases = {
      {"hello", Kind::Text, "hello"},
      {"hello\r", Kind::Text, "hello"},
      {"", Kind::Text, ""},
      {"\r", Kind::Text, ""},
      {"a/b", Kind::Text, "a/b"},
      {" /quit", Kind::Text, " /quit"},
      {"//quit", Kind::Text, "/quit"},
      {"//", Kind::Text, "/"},
      {"//x\r", Kind::Text, "/x"},
      {"/quit", Kind::Quit, ""},
      {"/quit\r", Kind::Quit, ""},
      {"/quit  ", Kind::Quit, ""},
      {"/exit", Kind::Quit, ""},
      {"/reset", Kind::Reset, ""},
      {"/help", Kind::Help, ""},
      {"/image photo.png", Kind::Image, "photo.png"},
      {"/image   my photo.png\r", Kind::Image, "my photo.png"},
      {"/image\tx.jpg", Kind::Image, "x.jpg"},
      {"/quit now", Kind::Invalid, "/quit takes no argument"},
      {"/reset all", Kind::Invalid, "/reset takes no argument"},
      {"/img x", Kind::Invalid, "unknown command /img"},
      {"/unknown", Kind::Invalid, "unknown command /unknown"},
      {"/", Kind::Invalid, "unknown command /"},
      {"/image", Kind::Invalid, "/image needs a file"},
      {"/image   \r", Kind::Invalid, "/image needs a file"},
      {"/images x", Kind::Invalid, "unknown command /images"},
      {"/video clip.mp4", Kind::Video, "clip.mp4"},
      {"/video  my clip.webm\r", Kind::Video, "my clip.webm"},
      {"/video", Kind::Invalid, "/video needs a file"},
      {"/videos x", Kind::Invalid, "unknown command /videos"},
  };
  int checked = 0;
  for (const Case& c : cases) {
    const ChatLine parsed = parse_chat_line(c.line);
    EXPECT_EQ(parsed.kind, c.kind) << c.line;
    if (c.kind == Kind::Invalid) {
      EXPECT_NE(parsed.text.find(c.text), std::string::npos) << c.line << " -> " << parsed.text;
      // Every mistake lists the commands, so the user learns them from the first slip.
      EXPECT_NE(parsed.text.find("/image PATH, /video PATH, /reset, /quit, /help"), std::string::npos) << parsed.text;
    } else {
      EXPECT_EQ(parsed.text, c.text) << c.line;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 30);
}

}  // namespace
}  // namespace q3vl::cli
