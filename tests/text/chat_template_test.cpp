// ChatTemplate: the native fast path and the Jinja path give transformers' text on the same
// corpus (tests/fixtures/chat/chat_cases.json, the messages parsed as the runtime parses them),
// and a template other than the reference one renders through the interpreter.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/tokenizer_files.h"
#include "q3vl/error.h"
#include "support/test_support.h"
#include "text/chat_template.h"
#include "util/files.h"

namespace q3vl {
namespace {

using nlohmann::ordered_json;

ordered_json load(const std::string& relative) {
  return ordered_json::parse(read_text_file(test::source_dir() / "tests" / "fixtures" / relative));
}

TEST(ChatTemplate, ReferenceTemplateIsNativeAndOthersAreNot) {
  EXPECT_TRUE(ChatTemplate::reference().native());
  EXPECT_FALSE(ChatTemplate(reference_chat_template(), ChatTemplate::Engine::Jinja).native());
  EXPECT_FALSE(ChatTemplate(reference_chat_template() + "\n").native());
}

// The proof the native renderer may stand in for the reference template: on every case of the
// chat corpus, native, Jinja and transformers agree byte for byte.
TEST(ChatTemplate, NativeAndJinjaAgreeWithTransformersOnTheChatCorpus) {
  const ordered_json fixtures = load("chat/chat_cases.json");
  const ChatTemplate native = ChatTemplate::reference();
  const ChatTemplate interpreted(reference_chat_template(), ChatTemplate::Engine::Jinja);
  std::size_t matched = 0;
  for (const ordered_json& fixture : fixtures.at("cases")) {
    SCOPED_TRACE(fixture.at("name").get<std::string>());
    ChatOptions options;
    options.add_generation_prompt = fixture.at("add_generation_prompt").get<bool>();
    options.add_vision_id = fixture.at("add_vision_id").get<bool>();
    if (fixture.contains("tools")) options.tools_json = parse_chat_tools(fixture.at("tools"));
    const std::vector<ChatMessage> messages = parse_chat_messages(fixture.at("messages"));
    const std::string expected = fixture.at("expected").get<std::string>();
    std::string by_native, by_jinja;
    ASSERT_NO_THROW(by_native = native.render(messages, options));
    ASSERT_NO_THROW(by_jinja = interpreted.render(messages, options));
    EXPECT_EQ(by_native, expected);
    EXPECT_EQ(by_jinja, expected);
    if (by_native == expected && by_jinja == expected) ++matched;
  }
  EXPECT_EQ(matched, 90u);
}

// Qwen3's text template (not the reference): the cases a parsed chat can express (string
// content; reasoning_content; keyword arguments such as enable_thinking as extra variables)
// render as transformers does.
TEST(ChatTemplate, OtherTemplatesRenderThroughTheInterpreter) {
  const ordered_json fixtures = load("templates/qwen3_text.json");
  const ChatTemplate chat_template(fixtures.at("template").get<std::string>());
  ASSERT_FALSE(chat_template.native());
  std::size_t matched = 0, with_variables = 0, with_reasoning = 0;
  for (const ordered_json& fixture : fixtures.at("cases")) {
    if (!fixture.contains("expected")) continue;
    bool expressible = true, reasoning = false;
    for (const ordered_json& message : fixture.at("messages")) {
      expressible = expressible && message.at("content").is_string() &&
                    (!message.contains("reasoning_content") || message.at("reasoning_content").is_string());
      reasoning = reasoning || message.contains("reasoning_content");
    }
    if (!expressible) continue;
    SCOPED_TRACE(fixture.at("name").get<std::string>());
    ChatOptions options;
    ordered_json variables = fixture.at("kwargs");
    options.add_generation_prompt = variables.at("add_generation_prompt").get<bool>();
    variables.erase("add_generation_prompt");
    if (!variables.empty()) options.extra_variables_json = variables.dump();
    if (fixture.contains("tools")) options.tools_json = parse_chat_tools(fixture.at("tools"));
    std::string rendered;
    ASSERT_NO_THROW(rendered = chat_template.render(parse_chat_messages(fixture.at("messages")), options));
    EXPECT_EQ(rendered, fixture.at("expected").get<std::string>());
    if (rendered != fixture.at("expected").get<std::string>()) continue;
    ++matched;
    with_variables += !variables.empty();
    with_reasoning += reasoning;
  }
  EXPECT_EQ(matched, 27u);
  EXPECT_EQ(with_variables, 9u);  // enable_thinking and other keyword arguments
  EXPECT_EQ(with_reasoning, 5u);
}

// Variables the chat itself sets are refused; add_vision_id reaches the native renderer too.
TEST(ChatTemplate, ExtraVariables) {
  const ChatTemplate reference = ChatTemplate::reference();
  ASSERT_TRUE(reference.native());
  const std::vector<ChatMessage> chat = {user_message({image_content(), text_content("Hi")})};
  ChatOptions options;
  options.extra_variables_json = R"({"add_vision_id": true, "enable_thinking": false})";
  EXPECT_NE(reference.render(chat, options).find("Picture 1: <|vision_start|>"), std::string::npos);
  const ChatTemplate interpreted(reference.source(), ChatTemplate::Engine::Jinja);
  EXPECT_EQ(interpreted.render(chat, options), reference.render(chat, options));
  for (const char* bad : {R"([1])", R"({"messages": []})", R"({"add_generation_prompt": false})", R"({"add_vision_id": 1})", "{"}) {
    options.extra_variables_json = bad;
    EXPECT_THROW(reference.render(chat, options), InvalidInput) << bad;
  }
}

// A checkpoint shipping Qwen3-VL Thinking's template (assets/qwen3-vl-thinking) in its
// tokenizer_config.json: not the reference template, so it renders through the interpreter, and the
// chat as the runtime parses it gives transformers' text (tests/fixtures/templates/qwen3_vl_thinking.json).
TEST(ChatTemplate, ThinkingTemplateFromATokenizerConfigRendersThroughJinja) {
  const ordered_json asset = ordered_json::parse(
      read_text_file(test::source_dir() / "assets" / "qwen3-vl-thinking" / "chat_template.json"));
  const test::TempDir dir;
  std::ofstream(dir / "tokenizer_config.json")
      << ordered_json({{"eos_token", "<|im_end|>"}, {"chat_template", asset.at("chat_template")}}).dump();
  const ChatTemplate chat_template = load_chat_template(dir / "tokenizer_config.json");
  ASSERT_FALSE(chat_template.native());

  const ordered_json fixtures = load("templates/qwen3_vl_thinking.json");
  ASSERT_EQ(fixtures.at("template"), asset.at("chat_template"));
  std::size_t matched = 0;
  // A <think> block split out of the content next to a counted image, and one before a tool call.
  for (const std::string name : {"thinking_think_block_with_image_in_user", "thinking_tool_call_content_with_think_block"}) {
    SCOPED_TRACE(name);
    const auto fixture = std::find_if(fixtures.at("cases").begin(), fixtures.at("cases").end(),
                                      [&](const ordered_json& c) { return c.at("name") == name; });
    ASSERT_NE(fixture, fixtures.at("cases").end());
    ChatOptions options;
    options.add_generation_prompt = fixture->at("kwargs").at("add_generation_prompt").get<bool>();
    options.add_vision_id = fixture->at("kwargs").value("add_vision_id", false);
    if (fixture->contains("tools")) options.tools_json = parse_chat_tools(fixture->at("tools"));
    std::string rendered;
    ASSERT_NO_THROW(rendered = chat_template.render(parse_chat_messages(fixture->at("messages")), options));
    EXPECT_EQ(rendered, fixture->at("expected").get<std::string>());
    if (rendered == fixture->at("expected").get<std::string>()) ++matched;
  }
  EXPECT_EQ(matched, 2u);
}

TEST(ChatTemplate, TemplateErrorsNameTheLine) {
  const ChatTemplate failing("{% if messages | length > 1 %}{{ raise_exception('one message only') }}{% endif %}ok");
  EXPECT_EQ(failing.render(std::vector<ChatMessage>{text_message("user", "hi")}), "ok");
  try {
    (void)failing.render(std::vector<ChatMessage>{text_message("user", "a"), text_message("user", "b")});
    FAIL() << "no error";
  } catch (const InvalidInput& error) {
    EXPECT_STREQ(error.what(), "chat template line 1: raise_exception: one message only");
  }
  EXPECT_THROW(ChatTemplate("{% include 'x' %}"), InvalidInput);
}

TEST(ChatTemplate, LoadsTheTemplateOfATokenizerConfig) {
  const test::TempDir dir;
  const auto write = [&](const ordered_json& config) {
    std::ofstream(dir / "tokenizer_config.json") << config.dump();
    return load_chat_template(dir / "tokenizer_config.json");
  };
  EXPECT_TRUE(load_chat_template(dir / "tokenizer_config.json").native());  // no file
  EXPECT_TRUE(write({{"eos_token", "<|im_end|>"}}).native());               // no template
  EXPECT_TRUE(write({{"chat_template", reference_chat_template()}}).native());
  const ChatTemplate custom = write({{"chat_template", "{% for m in messages %}[{{ m.role }}]{% endfor %}"}});
  EXPECT_FALSE(custom.native());
  EXPECT_EQ(custom.render(std::vector<ChatMessage>{text_message("user", "hi")}), "[user]");
  const ChatTemplate named = write({{"chat_template", ordered_json::array({{{"name", "tool_use"}, {"template", "T"}},
                                                                          {{"name", "default"}, {"template", "D"}}})}});
  EXPECT_EQ(named.render(std::vector<ChatMessage>{text_message("user", "hi")}), "D");
  const auto error_of = [&](const ordered_json& config) -> std::string {
    try {
      (void)write(config);
    } catch (const InvalidInput& error) {
      return error.what();
    }
    return "(no error)";
  };
  const std::string file = (dir / "tokenizer_config.json").string();
  EXPECT_EQ(error_of({{"chat_template", 3}}), file + ": \"chat_template\" must be a string or a list of named templates");
  EXPECT_EQ(error_of({{"chat_template", ordered_json::array()}}), file + ": \"chat_template\" lists no template named \"default\"");
  EXPECT_EQ(error_of({{"chat_template", "{% include 'x' %}"}}), file + ": chat template line 1: unsupported tag 'include'");
}

}  // namespace
}  // namespace q3vl
