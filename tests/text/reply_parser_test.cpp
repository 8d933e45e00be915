// ReplyParser: a reply's reasoning, answer and tool calls taken apart as the text streams, the
// same whatever the pieces the text arrives in.
#include "text/reply_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace q3vl {
namespace {

struct Parsed {
  std::string reasoning, content;
  std::vector<ParsedToolCall> calls;
  bool malformed = false;
  std::vector<ReplyPiece> pieces;
};

// Feeds `text` in pieces of `step` bytes (0: whole).
Parsed parse(const std::string& text, ReplyParser::Options options, std::size_t step = 0) {
  ReplyParser parser(options);
  Parsed out;
  if (step == 0) step = text.size() + 1;
  for (std::size_t i = 0; i < text.size(); i += step) parser.push(std::string_view(text).substr(i, step), out.pieces);
  parser.finish(out.pieces);
  for (const ReplyPiece& piece : out.pieces) {
    switch (piece.kind) {
      case ReplyPiece::Kind::Reasoning: out.reasoning += piece.text; break;
      case ReplyPiece::Kind::Content: out.content += piece.text; break;
      case ReplyPiece::Kind::ToolCall: out.calls.push_back(piece.call); break;
    }
  }
  out.malformed = parser.malformed_tool_call();
  return out;
}

constexpr ReplyParser::Options kThinking{.starts_in_reasoning = true, .detects_reasoning = true, .parses_tool_calls = false};
constexpr ReplyParser::Options kThinkingWithTools{.starts_in_reasoning = true, .detects_reasoning = true, .parses_tool_calls = true};
constexpr ReplyParser::Options kTools{.starts_in_reasoning = false, .detects_reasoning = false, .parses_tool_calls = true};
constexpr ReplyParser::Options kPlain{};

// Every split of the text gives the same result as the whole.
void expect_any_split(const std::string& text, ReplyParser::Options options, const Parsed& whole) {
  for (std::size_t step = 1; step <= text.size(); ++step) {
    const Parsed split = parse(text, options, step);
    EXPECT_EQ(split.reasoning, whole.reasoning) << "step " << step;
    EXPECT_EQ(split.content, whole.content) << "step " << step;
    ASSERT_EQ(split.calls.size(), whole.calls.size()) << "step " << step;
    for (std::size_t i = 0; i < whole.calls.size(); ++i) {
      EXPECT_EQ(split.calls[i].name, whole.calls[i].name);
      EXPECT_EQ(split.calls[i].arguments, whole.calls[i].arguments);
    }
    EXPECT_EQ(split.malformed, whole.malformed);
  }
}

TEST(ReplyParser, PlainTextPassesThroughUnchanged) {
  const std::string text = "  <think>not parsed</think>\n<tool_call>{\"name\": \"f\"}</tool_call>\n";
  const Parsed whole = parse(text, kPlain);
  EXPECT_EQ(whole.content, text);
  EXPECT_TRUE(whole.reasoning.empty());
  expect_any_split(text, kPlain, whole);
}

TEST(ReplyParser, ThinkingPromptReasonsUntilTheBlockCloses) {
  // Qwen3-VL Thinking's prompt ends in "<think>\n"; the template reads back the reasoning without
  // the newlines around it and the answer without the ones after </think>.
  const std::string text = "\nLet me look.\nA cat.\n\n</think>\n\nIt is a cat.";
  const Parsed whole = parse(text, kThinking);
  EXPECT_EQ(whole.reasoning, "Let me look.\nA cat.");
  EXPECT_EQ(whole.content, "It is a cat.");
  expect_any_split(text, kThinking, whole);
}

TEST(ReplyParser, ReasoningCutByTheTokenLimitIsAllReasoning) {
  const std::string text = "Still thinking\n</thi";
  const Parsed whole = parse(text, kThinking);
  EXPECT_EQ(whole.reasoning, text);
  EXPECT_TRUE(whole.content.empty());
  expect_any_split(text, kThinking, whole);
}

TEST(ReplyParser, ATemplateThatKnowsThinkDetectsABlockTheModelOpens) {
  const ReplyParser::Options detect{.starts_in_reasoning = false, .detects_reasoning = true, .parses_tool_calls = false};
  const std::string opened = "\n<think>\nhmm\n</think>\n\nAnswer <think> stays";
  const Parsed whole = parse(opened, detect);
  EXPECT_EQ(whole.reasoning, "hmm");
  EXPECT_EQ(whole.content, "Answer <think> stays");
  expect_any_split(opened, detect, whole);
  // Only at the start: text first means no reasoning.
  const Parsed late = parse("Hi <think>x</think>", detect);
  EXPECT_EQ(late.content, "Hi <think>x</think>");
  EXPECT_TRUE(late.reasoning.empty());
  // "<thi" at the very end is text, not a tag.
  EXPECT_EQ(parse("<thi", detect).content, "<thi");
}

TEST(ReplyParser, ToolCallsBecomeCallsWithTheirArgumentsAsPythonWritesThem) {
  const std::string text =
      "I will check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\",\"days\":[1,2]}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"clock\", \"arguments\": {}}\n</tool_call>";
  const Parsed whole = parse(text, kTools);
  EXPECT_EQ(whole.content, "I will check.");
  ASSERT_EQ(whole.calls.size(), 2u);
  EXPECT_EQ(whole.calls[0].name, "get_weather");
  EXPECT_EQ(whole.calls[0].arguments, "{\"city\": \"Paris\", \"days\": [1, 2]}");  // key order kept
  EXPECT_EQ(whole.calls[1].name, "clock");
  EXPECT_EQ(whole.calls[1].arguments, "{}");
  EXPECT_FALSE(whole.malformed);
  expect_any_split(text, kTools, whole);
}

TEST(ReplyParser, ReasoningThenACall) {
  const std::string text = "plan\n</think>\n\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>";
  const Parsed whole = parse(text, kThinkingWithTools);
  EXPECT_EQ(whole.reasoning, "plan");
  EXPECT_TRUE(whole.content.empty());
  ASSERT_EQ(whole.calls.size(), 1u);
  EXPECT_EQ(whole.calls[0].arguments, "{\"x\": 1}");
  expect_any_split(text, kThinkingWithTools, whole);
}

TEST(ReplyParser, MalformedOrUnfinishedCallsStayAsTheRawText) {
  for (const std::string& body : {std::string("not json"), std::string("{\"arguments\": {}}"), std::string("{\"name\": 3}"),
                                 std::string("[1, 2]"), std::string("{\"name\": \"f\", \"arguments\": \"x\"}"),
                                 std::string(200, '[')}) {
    const std::string text = "A <tool_call>" + body + "</tool_call> B";
    const Parsed whole = parse(text, kTools);
    EXPECT_TRUE(whole.calls.empty()) << body;
    EXPECT_TRUE(whole.malformed) << body;
    EXPECT_EQ(whole.content, text) << body;
  }
  const std::string cut = "A <tool_call>\n{\"name\": \"f\", \"argu";
  const Parsed unfinished = parse(cut, kTools);
  EXPECT_TRUE(unfinished.calls.empty());
  EXPECT_TRUE(unfinished.malformed);
  EXPECT_EQ(unfinished.content, cut);
  expect_any_split(cut, kTools, unfinished);
}

TEST(ReplyParser, AnswerWhitespaceIsKeptUnlessACallFollows) {
  EXPECT_EQ(parse("a \n b  \n", kTools).content, "a \n b  \n");
  const Parsed call = parse("a\n\n<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>\n\nb\n", kTools);
  EXPECT_EQ(call.content, "ab");
  ASSERT_EQ(call.calls.size(), 1u);
}

}  // namespace
}  // namespace q3vl
