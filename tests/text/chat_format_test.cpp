// The native chat renderer against transformers' own rendering of the Qwen3-VL Instruct template
// (tests/fixtures/chat/chat_cases.json, from tools/golden/gen_chat_fixtures.py), plus the
// JSON-message parser's handling of OpenAI-style input and malformed messages.
#include <gtest/gtest.h>

#include <limits>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "text/chat_format.h"
#include "support/test_support.h"
#include "util/files.h"

namespace q3vl {
namespace {

using nlohmann::ordered_json;

ordered_json load_chat_fixtures() {
  return ordered_json::parse(read_text_file(test::source_dir() / "tests" / "fixtures" / "chat" / "chat_cases.json"));
}

ChatOptions no_generation_prompt() {
  ChatOptions options;
  options.add_generation_prompt = false;
  return options;
}

std::string render_json(const char* messages_json, const ChatOptions& options = {}) {
  const std::vector<ChatMessage> messages = parse_chat_messages(ordered_json::parse(messages_json));
  return render_chat(messages, options);
}

TEST(ChatFormatFixtures, EveryCaseRendersLikeTransformers) {
  const ordered_json fixtures = load_chat_fixtures();
  const ordered_json& cases = fixtures.at("cases");
  ASSERT_GE(cases.size(), 60u);
  std::size_t matched = 0;
  for (const ordered_json& fixture : cases) {
    const std::string name = fixture.at("name").get<std::string>();
    SCOPED_TRACE(name);
    ChatOptions options;
    options.add_generation_prompt = fixture.at("add_generation_prompt").get<bool>();
    options.add_vision_id = fixture.at("add_vision_id").get<bool>();
    if (fixture.contains("tools")) options.tools_json = parse_chat_tools(fixture.at("tools"));
    std::string rendered;
    ASSERT_NO_THROW(rendered = render_chat(parse_chat_messages(fixture.at("messages")), options));
    EXPECT_EQ(rendered, fixture.at("expected").get<std::string>());
    if (rendered == fixture.at("expected").get<std::string>()) ++matched;
  }
  EXPECT_EQ(matched, cases.size());
}

TEST(ChatFormat, HelpersGiveTheSpecExample) {
  const std::vector<ChatMessage> messages = {user_message({image_content(), text_content("Describe this image.")})};
  EXPECT_EQ(render_chat(messages),
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatFormat, EmptyTextMessageHasNoContent) {
  // "" must stay falsy for the newline-before-tool-call rule.
  EXPECT_TRUE(text_message("assistant", "").content.empty());
  ChatMessage call = text_message("assistant", "");
  call.tool_calls.push_back({"f", "{}", false});
  EXPECT_EQ(render_chat(std::vector<ChatMessage>{call}, no_generation_prompt()),
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call><|im_end|>\n");
}

TEST(ChatFormat, RejectsWhatTheTemplateCannotRender) {
  EXPECT_THROW(render_chat({}), InvalidInput);
  EXPECT_THROW(render_chat(std::vector<ChatMessage>{text_message("developer", "x")}), InvalidInput);
  ChatMessage user_with_call = text_message("user", "x");
  user_with_call.tool_calls.push_back({"f", "{}", false});
  EXPECT_THROW(render_chat(std::vector<ChatMessage>{user_with_call}), InvalidInput);
  ChatOptions empty_tool;
  empty_tool.tools_json = {""};
  EXPECT_THROW(render_chat(std::vector<ChatMessage>{text_message("user", "x")}, empty_tool), InvalidInput);
}

TEST(ChatJson, KeepsMediaSources) {
  const std::vector<ChatMessage> messages = parse_chat_messages(ordered_json::parse(R"([{"role": "user", "content": [
      {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
      {"type": "image", "path": "/tmp/b.png"},
      {"type": "video", "video": "clip.mp4"},
      {"type": "text", "text": "hi"}]}])"));
  ASSERT_EQ(messages.size(), 1u);
  ASSERT_EQ(messages[0].content.size(), 4u);
  EXPECT_EQ(messages[0].content[0].kind, ChatContent::Kind::Image);
  EXPECT_EQ(messages[0].content[0].text, "https://example.com/a.png");
  EXPECT_EQ(messages[0].content[1].text, "/tmp/b.png");
  EXPECT_EQ(messages[0].content[2].kind, ChatContent::Kind::Video);
  EXPECT_EQ(messages[0].content[2].text, "clip.mp4");
  EXPECT_EQ(messages[0].content[3].kind, ChatContent::Kind::Text);
}

TEST(ChatJson, OpenAiToolCallWithNullContent) {
  // OpenAI sends content: null next to tool_calls; it reads as absent content (no newline).
  EXPECT_EQ(render_json(R"([{"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}])",
                        no_generation_prompt()),
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\":1}}\n</tool_call><|im_end|>\n");
}

TEST(ChatJson, UnorderedJsonOverloadSortsKeys) {
  const nlohmann::json messages = nlohmann::json::parse(
      R"([{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"b": 1, "a": 2}}}]}])");
  EXPECT_EQ(parse_chat_messages(messages).at(0).tool_calls.at(0).arguments_json, "{\"a\": 2, \"b\": 1}");
  EXPECT_EQ(parse_chat_messages(ordered_json::parse(messages.dump())).at(0).tool_calls.at(0).arguments_json,
            "{\"a\": 2, \"b\": 1}");
}

TEST(ChatJson, RejectsMalformedMessages) {
  const char* malformed[] = {
      R"({"role": "user", "content": "not a list of messages"})",
      R"([["user", "hi"]])",
      R"([{"content": "no role"}])",
      R"([{"role": 3, "content": "x"}])",
      R"([{"role": "developer", "content": "x"}])",
      R"([{"role": "user", "content": 42}])",
      R"([{"role": "user", "content": ["a string item", "another"]}])",
      R"([{"role": "user", "content": [{"type": "text", "text": null}]}])",
      R"([{"role": "user", "content": [{"type": "text"}]}])",
      R"([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}])",
      R"([{"role": "assistant", "content": [{"type": "thinking"}]}])",
      R"([{"role": "user", "content": "x", "tool_calls": [{"name": "f", "arguments": {}}]}])",
      R"([{"role": "assistant", "content": "", "tool_calls": {"name": "f"}}])",
      R"([{"role": "assistant", "content": "", "tool_calls": [{"function": {"arguments": {}}}]}])",
      R"([{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]}])",
      R"([{"role": "assistant", "content": "", "tool_calls": ["call f"]}])",
  };
  for (const char* messages : malformed) {
    SCOPED_TRACE(messages);
    EXPECT_THROW(parse_chat_messages(ordered_json::parse(messages)), InvalidInput);
  }
  EXPECT_THROW(parse_chat_tools(ordered_json::parse(R"(["not an object"])")), InvalidInput);
  EXPECT_THROW(parse_chat_tools(ordered_json::parse(R"({"name": "f"})")), InvalidInput);
}

TEST(ChatJson, ErrorsNameTheMessageAndItem) {
  try {
    parse_chat_messages(ordered_json::parse(R"([{"role": "user", "content": "x"},
        {"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "audio"}]}])"));
    FAIL() << "expected InvalidInput";
  } catch (const InvalidInput& error) {
    EXPECT_NE(std::string(error.what()).find("messages[1].content[1]"), std::string::npos) << error.what();
  }
}

TEST(ChatJson, DumpsLikePythonJson) {
  EXPECT_EQ(dump_json_like_python(ordered_json::parse(R"({"z": [1, 2.0, -0.0, 1e16, 1e-5, 0.5], "a": {}, "u": "é\u0007\"", "n": null})")),
            "{\"z\": [1, 2.0, -0.0, 1e+16, 1e-05, 0.5], \"a\": {}, \"u\": \"é\\u0007\\\"\", \"n\": null}");
  EXPECT_EQ(dump_json_like_python(ordered_json(std::numeric_limits<double>::infinity())), "Infinity");
  EXPECT_EQ(dump_json_like_python(ordered_json(123456789012345678.0)), "1.2345678901234568e+17");
  EXPECT_EQ(dump_json_like_python(ordered_json(0.001)), "0.001");
}

}  // namespace
}  // namespace q3vl
