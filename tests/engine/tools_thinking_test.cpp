// Thinking models and tool calls through Conversation::respond, on the golden `full` model
// (random weights, real vocabulary) packaged with Qwen3-VL Thinking's published template:
// chats holding reasoning, tool calls and tool results render as transformers renders them (the
// template corpus's expected text, tokenized); a reply's reasoning is kept apart from its answer;
// tool_choice "required" or a named function holds an untrained model to one well-formed call
// whose arguments satisfy the tool's schema, within any token budget that can hold one; the call
// goes back in with its result and the cache keeps what the call's turn computed.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/model_data.h"
#include "engine/turn_trace.h"
#include "q3vl/error.h"
#include "support/full_model.h"
#include "text/python_json.h"
#include "util/files.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;
using test::greedy;

const char* const kWeatherTool = R"({"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
  "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 16},
  "unit": {"enum": ["celsius", "fahrenheit"]}, "days": {"type": "integer"}}, "required": ["city", "unit"]}}})";
const char* const kClockTool = R"({"type": "function", "function": {"name": "clock", "parameters": {"type": "object",
  "properties": {"zone": {"type": "string", "maxLength": 8}}, "required": ["zone"]}}})";

class ToolsAndThinking : public test::FullModelTest {
 protected:
  // The package with another chat template (symlinks to everything else).
  static std::shared_ptr<const Model> with_template(const std::string& name, const std::string& source) {
    const fs::path custom = dir().path() / name;
    if (!fs::exists(custom)) {
      fs::create_directories(custom);
      for (const fs::directory_entry& entry : fs::directory_iterator(package())) {
        if (entry.path().filename() != "tokenizer_config.json") fs::create_symlink(entry.path(), custom / entry.path().filename());
      }
      nlohmann::json config = nlohmann::json::parse(read_text_file(package() / "tokenizer_config.json"));
      config["chat_template"] = source;
      std::ofstream(custom / "tokenizer_config.json") << config.dump();
    }
    return Model::load(custom);
  }
  static std::string thinking_template() {
    return nlohmann::json::parse(read_text_file(test::source_dir() / "assets/qwen3-vl-thinking/chat_template.json"))["chat_template"];
  }
  static const std::shared_ptr<const Model>& thinking() {
    static const std::shared_ptr<const Model> model = with_template("pkg-thinking", thinking_template());
    return model;
  }
};

// A text-only fixture chat (HF's message JSON) as the library's messages.
std::vector<Message> messages_of(const ordered_json& chat) {
  std::vector<Message> out;
  for (const ordered_json& m : chat) {
    Message message{m["role"].get<std::string>(), {}, {}, {}, {}};
    if (m.contains("content") && m["content"].is_string() && !m["content"].get<std::string>().empty()) {
      message.content.emplace_back(m["content"].get<std::string>());
    }
    if (m.contains("reasoning_content") && m["reasoning_content"].is_string()) message.reasoning = m["reasoning_content"];
    if (m.contains("tool_calls")) {
      for (const ordered_json& call : m["tool_calls"]) {
        const ordered_json& function = call.contains("function") ? call["function"] : call;
        const ordered_json& arguments = function["arguments"];
        // An object goes in as the text the template's tojson would write for it.
        message.tool_calls.push_back({"", function["name"], arguments.is_string() ? arguments.get<std::string>() : dump_json_like_python(arguments)});
      }
    }
    out.push_back(std::move(message));
  }
  return out;
}

// Whether a chat survives the trip into the library's messages unchanged for the template: string
// content, object arguments (given to the library as the text tojson writes) or string ones,
// nothing else a message could carry.
bool library_can_say(const ordered_json& test_case) {
  if (test_case.contains("expected_error") || test_case.contains("template")) return false;
  const ordered_json& kwargs = test_case["kwargs"];
  if (!kwargs.value("add_generation_prompt", false) || kwargs.value("add_vision_id", false)) return false;
  const ordered_json& chat = test_case["messages"];
  if (chat.empty() || (chat.back()["role"] != "user" && chat.back()["role"] != "tool")) return false;
  for (const ordered_json& m : chat) {
    // Media placeholders typed as text are refused by the library (images are attached, not typed).
    if (m.dump().find("<|") != std::string::npos) return false;
    for (const auto& [key, value] : m.items()) {
      if (key != "role" && key != "content" && key != "reasoning_content" && key != "tool_calls") return false;
    }
    const std::string role = m["role"];
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") return false;
    if (!m.contains("content") || !m["content"].is_string()) return false;
    if (m.contains("reasoning_content") && !m["reasoning_content"].is_string()) return false;
    if (m.contains("tool_calls")) {
      for (const ordered_json& call : m["tool_calls"]) {
        const ordered_json& function = call.contains("function") ? call["function"] : call;
        if (!function.contains("arguments") || !(function["arguments"].is_string() || function["arguments"].is_object())) return false;
      }
    }
  }
  return true;
}

TEST_F(ToolsAndThinking, ChatsWithReasoningToolCallsAndResultsRenderAsTransformersDoes) {
  const ordered_json fixture =
      ordered_json::parse(read_text_file(test::source_dir() / "tests/fixtures/templates/qwen3_vl_thinking.json"));
  const Tokenizer& tokenizer = thinking()->data().tokenizer;
  int checked = 0, with_tools = 0, with_calls = 0;
  for (const ordered_json& test_case : fixture["cases"]) {
    if (!library_can_say(test_case)) continue;
    ReplyOptions options = greedy(1);
    if (test_case.contains("tools") && test_case["tools"].is_array()) {
      for (const ordered_json& tool : test_case["tools"]) options.tools.push_back(tool.dump());
      ++with_tools;
    }
    const std::vector<Message> chat = messages_of(test_case["messages"]);
    with_calls += std::ranges::any_of(chat, [](const Message& m) { return !m.tool_calls.empty(); });
    TurnTrace trace;
    Conversation(thinking()).respond(chat, options, nullptr, &trace);
    EXPECT_EQ(trace.prompt_ids, tokenizer.encode(test_case["expected"].get<std::string>())) << test_case["name"];
    ++checked;
  }
  // The corpus's text chats the library can carry (tests/fixtures/templates/qwen3_vl_thinking.json).
  EXPECT_EQ(checked, 30);
  EXPECT_EQ(with_tools, 6);
  EXPECT_EQ(with_calls, 7);
}

TEST_F(ToolsAndThinking, TheReasoningIsKeptApartFromTheAnswer) {
  std::string streamed_reasoning, streamed_content;
  ReplyOptions options = greedy(16);
  options.on_delta = [&](const ReplyDelta& delta) {
    (delta.kind == ReplyDelta::Kind::Reasoning ? streamed_reasoning : streamed_content) += delta.text;
  };
  const Reply reply = Conversation(thinking()).respond({Message{"user", {std::string("Why is the sky blue?")}, {}, {}, {}}}, options);
  // An untrained model never closes the block: all it wrote is reasoning.
  ASSERT_EQ(reply.text.find("</think>"), std::string::npos);
  EXPECT_FALSE(reply.reasoning.empty());
  EXPECT_TRUE(reply.content.empty());
  EXPECT_EQ(streamed_reasoning, reply.reasoning);
  EXPECT_EQ(streamed_content, reply.content);
  // The Instruct template does not know <think>: the same words would be the answer.
  const Reply instruct = Conversation(model()).respond({Message{"user", {std::string("Why is the sky blue?")}, {}, {}, {}}}, greedy(16));
  EXPECT_EQ(instruct.content, instruct.text);
  EXPECT_TRUE(instruct.reasoning.empty());
}

// The call's arguments checked against kWeatherTool / kClockTool by hand (the CLI and server tests
// validate with ajv).
void expect_valid_call(const FunctionCall& call, const std::string& only_name = "") {
  if (!only_name.empty()) {
    EXPECT_EQ(call.name, only_name);
  }
  const ordered_json arguments = ordered_json::parse(call.arguments);
  ASSERT_TRUE(arguments.is_object());
  if (call.name == "get_weather") {
    ASSERT_TRUE(arguments.contains("city") && arguments["city"].is_string());
    EXPECT_TRUE(arguments["unit"] == "celsius" || arguments["unit"] == "fahrenheit") << call.arguments;
    if (arguments.contains("days")) {  // JSON Schema's integer: a number without a fraction (1e2 counts)
      ASSERT_TRUE(arguments["days"].is_number()) << call.arguments;
      const double days = arguments["days"].get<double>();
      EXPECT_EQ(days, std::trunc(days)) << call.arguments;
    }
  } else {
    ASSERT_EQ(call.name, "clock");
    ASSERT_TRUE(arguments.contains("zone") && arguments["zone"].is_string());
  }
  EXPECT_TRUE(call.id.starts_with("call_")) << call.id;
}

TEST_F(ToolsAndThinking, ARequiredCallIsOneWellFormedCallWithinAnyBudgetThatHoldsOne) {
  std::set<std::string> names;
  int replies = 0;
  for (const auto& [model, budgets] : {std::pair{thinking(), std::vector<std::int64_t>{40, 64, 200}},
                                       std::pair{model(), std::vector<std::int64_t>{24, 64}}}) {
    for (const std::int64_t budget : budgets) {
      for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        ReplyOptions options;
        options.sampling = model->default_sampling();
        options.sampling->greedy = false;
        options.sampling->seed = seed;
        options.max_new_tokens = budget;
        options.tools = {kWeatherTool, kClockTool};
        options.tool_choice.mode = ToolChoice::Mode::Required;
        std::vector<FunctionCall> streamed;
        options.on_delta = [&](const ReplyDelta& delta) {
          if (delta.kind == ReplyDelta::Kind::ToolCall) streamed.push_back(*delta.call);
        };
        const Reply reply = Conversation(model).respond({Message{"user", {std::string("Weather in Paris?")}, {}, {}, {}}}, options);
        ASSERT_EQ(reply.tool_calls.size(), 1u) << reply.text;
        expect_valid_call(reply.tool_calls[0]);
        names.insert(reply.tool_calls[0].name);
        EXPECT_EQ(reply.finish_reason, "tool_calls");
        EXPECT_LE(static_cast<std::int64_t>(reply.tokens.size()), budget);
        EXPECT_TRUE(reply.content.empty()) << reply.content;
        ASSERT_EQ(streamed.size(), 1u);
        EXPECT_EQ(streamed[0].arguments, reply.tool_calls[0].arguments);
        if (model == thinking()) {
          EXPECT_NE(reply.text.find("\n</think>\n\n<tool_call>\n{"), std::string::npos) << reply.text;
        }
        ++replies;
      }
    }
  }
  EXPECT_EQ(replies, 15);
  EXPECT_EQ(names.size(), 2u);  // the model chose between the tools
}

TEST_F(ToolsAndThinking, ANamedFunctionIsTheOneCalled) {
  ReplyOptions options = greedy(48);
  options.tools = {kWeatherTool, kClockTool};
  options.tool_choice = {ToolChoice::Mode::Function, "clock"};
  const Reply reply = Conversation(model()).respond({Message{"user", {std::string("Time?")}, {}, {}, {}}}, options);
  ASSERT_EQ(reply.tool_calls.size(), 1u);
  expect_valid_call(reply.tool_calls[0], "clock");
}

TEST_F(ToolsAndThinking, TheCallAndItsResultGoBackInAndTheCacheKeepsTheTurn) {
  Conversation conversation(thinking());
  ReplyOptions options = greedy(80);
  options.tools = {kWeatherTool};
  options.tool_choice = {ToolChoice::Mode::Function, "get_weather"};
  std::vector<Message> chat = {Message{"user", {std::string("Weather in Paris?")}, {}, {}, {}}};
  const Reply call = conversation.respond(chat, options);
  ASSERT_EQ(call.tool_calls.size(), 1u);
  chat.push_back(Message{"assistant", {}, call.tool_calls, call.reasoning, {}});
  if (!call.content.empty()) chat.back().content.emplace_back(call.content);
  chat.push_back(Message{"tool", {std::string(R"({"temperature": 21, "sky": "clear"})")}, {}, {}, call.tool_calls[0].id});
  options.tool_choice = {};
  TurnTrace trace;
  const Reply answer = conversation.respond(chat, options, nullptr, &trace);
  EXPECT_TRUE(answer.finish_reason == "length" || answer.finish_reason == "stop" || answer.finish_reason == "tool_calls");
  // The first turn's prompt is cached (how much of the call's own turn too depends on the spaces
  // the model chose in its JSON: the template writes Python's).
  EXPECT_GE(answer.cached_tokens, call.prompt_tokens);
  const std::string prompt = thinking()->data().tokenizer.decode(trace.prompt_ids);
  EXPECT_NE(prompt.find("<tool_response>\n{\"temperature\": 21, \"sky\": \"clear\"}\n</tool_response>"), std::string::npos);
}

TEST_F(ToolsAndThinking, MalformedToolRequestsAreRefusedBeforeAnyWork) {
  Conversation conversation(model());
  const std::vector<Message> ask = {Message{"user", {std::string("Hi")}, {}, {}, {}}};
  auto refused = [&](ReplyOptions options, const std::vector<Message>& chat, const std::string& says) {
    try {
      conversation.respond(chat, options);
      ADD_FAILURE() << "accepted; expected an error saying " << says;
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  ReplyOptions unknown = greedy(8);
  unknown.tools = {kWeatherTool};
  unknown.tool_choice = {ToolChoice::Mode::Function, "nope"};
  refused(unknown, ask, "no tool named \"nope\"");
  ReplyOptions required = greedy(8);
  required.tool_choice.mode = ToolChoice::Mode::Required;
  refused(required, ask, "\"required\" needs tools");
  ReplyOptions not_a_function = greedy(8);
  not_a_function.tools = {R"({"type": "retrieval"})"};
  refused(not_a_function, ask, "tools[0].type");
  ReplyOptions both = greedy(8);
  both.tools = {kWeatherTool};
  both.tool_choice.mode = ToolChoice::Mode::Required;
  both.response_format.kind = ResponseFormat::Kind::JsonObject;
  refused(both, ask, "cannot both hold the reply");
  ReplyOptions tiny_budget = greedy(3);
  tiny_budget.tools = {kWeatherTool};
  tiny_budget.tool_choice.mode = ToolChoice::Mode::Required;
  refused(tiny_budget, ask, "raise max_tokens");
  refused(greedy(4), {Message{"user", {std::string("Hi")}, {FunctionCall{"", "f", "{}"}}, {}, {}}}, "only assistant messages make tool calls");
  refused(greedy(4),
          {Message{"user", {std::string("Hi")}, {}, {}, {}}, Message{"assistant", {}, {FunctionCall{"", "f", "[1]"}}, {}, {}},
           Message{"tool", {std::string("x")}, {}, {}, {}}},
          "must be a JSON object");
  refused(greedy(4), {Message{"user", {std::string("Hi")}, {}, {}, {}}, Message{"assistant", {std::string("Hello")}, {}, {}, {}}},
          "the user's or a tool result");
  EXPECT_EQ(conversation.turns(), 0);
}

}  // namespace
}  // namespace q3vl
