// parse_chat_request against OpenAI's request shape: what valid bodies give, and that every
// malformed, mistyped or out-of-range field is a 400 naming its path (hostile bodies included).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/chat_request.h"

namespace q3vl::server {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }


// A body with one user message and `members` (a JSON fragment) added at the top level.
std::string body_with(const std::string& members) {
  std::string body = R"({"messages": [{"role": "user", "content": "hi"}])";
  if (!members.empty()) body += ", " + members;
  return body + "}";
}

// A body whose messages array is `messages` (a JSON fragment).
std::string messages_body(const std::string& messages) { return R"({"messages": )" + messages + "}"; }

// The ApiError the body is refused with (a test failure when it is accepted or throws anything else).
ApiError refusal(std::string_view body, const RequestLimits& limits = {}) {
  try {
    parse_chat_request(body, limits);
  } catch (const ApiError& error) {
    return error;
  } catch (const std::exception& error) {
    ADD_FAILURE() << "not an ApiError: " << error.what();
    return ApiError(0, "");
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}

void expect_refused(std::string_view body, const std::string& param, const std::string& phrase,
                    const RequestLimits& limits = {}) {
  SCOPED_TRACE(std::string(body.substr(0, 300)));
  const ApiError error = refusal(body, limits);
  EXPECT_EQ(error.status(), 400);
  EXPECT_EQ(error.param(), param);
  EXPECT_PRED2(contains, error.what(), phrase);
  EXPECT_EQ(error.type(), "invalid_request_error");
  // Whatever the body held, the message must serialise as JSON (valid UTF-8).
  EXPECT_NO_THROW((void)nlohmann::json(error.what()).dump());
}

TEST(ServerChatRequest, MinimalRequestHasDefaults) {
  const ChatRequest request = parse_chat_request(body_with(""));
  ASSERT_EQ(request.messages.size(), 1u);
  EXPECT_EQ(request.messages[0].role, "user");
  ASSERT_EQ(request.messages[0].content.size(), 1u);
  EXPECT_EQ(request.messages[0].content[0].kind, RequestPart::Kind::Text);
  EXPECT_EQ(request.messages[0].content[0].text, "hi");
  EXPECT_FALSE(request.stream);
  EXPECT_FALSE(request.include_usage);
  EXPECT_FALSE(request.max_tokens);
  EXPECT_FALSE(request.temperature);
  EXPECT_FALSE(request.seed);
  EXPECT_TRUE(request.stop.empty());
  EXPECT_FALSE(request.logprobs);
  EXPECT_EQ(request.model, "");
}

TEST(ServerChatRequest, FullRequestKeepsEveryPartAndParameter) {
  const std::string body = R"({
    "model": "qwen3-vl", "stream": true, "stream_options": {"include_usage": true},
    "messages": [
      {"role": "developer", "content": "be brief", "name": "ignored"},
      {"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}},
        {"type": "image_url", "image_url": "photos/cat.png"},
        {"type": "video_url", "video_url": {"url": "file:///media/clip.mp4"}}]},
      {"role": "assistant", "content": null, "refusal": null, "tool_calls": []},
      {"role": "assistant", "content": [{"type": "text", "text": "a cat"}, {"type": "refusal", "refusal": "no"}]},
      {"role": "user", "content": "and now?"}],
    "max_completion_tokens": 100, "max_tokens": 50, "temperature": 0.7, "top_p": 1, "min_p": 0.05,
    "top_k": -1, "repetition_penalty": 1.05, "presence_penalty": -2, "frequency_penalty": 2, "seed": -1,
    "stop": ["\n\n", "END"], "logprobs": true, "top_logprobs": 20, "n": 1, "min_pixels": 3136, "max_pixels": 1003520,
    "user": "unknown fields are ignored", "tools": null})";
  const ChatRequest request = parse_chat_request(body);
  EXPECT_EQ(request.model, "qwen3-vl");
  EXPECT_TRUE(request.stream);
  EXPECT_TRUE(request.include_usage);
  ASSERT_EQ(request.messages.size(), 5u);
  EXPECT_EQ(request.messages[0].role, "system");
  const auto& parts = request.messages[1].content;
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_EQ(parts[0].kind, RequestPart::Kind::Text);
  EXPECT_EQ(parts[1].kind, RequestPart::Kind::Image);
  EXPECT_EQ(parts[1].text, "data:image/png;base64,AAAA");
  EXPECT_EQ(parts[2].kind, RequestPart::Kind::Image);
  EXPECT_EQ(parts[2].text, "photos/cat.png");
  EXPECT_EQ(parts[3].kind, RequestPart::Kind::Video);
  EXPECT_EQ(parts[3].text, "file:///media/clip.mp4");
  EXPECT_TRUE(request.messages[2].content.empty());
  ASSERT_EQ(request.messages[3].content.size(), 1u);  // the refusal part is dropped
  EXPECT_EQ(request.messages[3].content[0].text, "a cat");
  EXPECT_EQ(request.max_tokens, 100);  // max_completion_tokens wins over max_tokens
  EXPECT_DOUBLE_EQ(*request.temperature, 0.7);
  EXPECT_DOUBLE_EQ(*request.top_p, 1.0);
  EXPECT_DOUBLE_EQ(*request.min_p, 0.05);
  EXPECT_EQ(request.top_k, 0);  // -1 is "off"
  EXPECT_DOUBLE_EQ(*request.repetition_penalty, 1.05);
  EXPECT_DOUBLE_EQ(*request.presence_penalty, -2.0);
  EXPECT_DOUBLE_EQ(*request.frequency_penalty, 2.0);
  EXPECT_EQ(request.seed, std::numeric_limits<std::uint64_t>::max());  // two's complement of -1
  EXPECT_EQ(request.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_TRUE(request.logprobs);
  EXPECT_EQ(request.top_logprobs, 20);
  EXPECT_EQ(request.min_pixels, 3136);
  EXPECT_EQ(request.max_pixels, 1003520);
}

TEST(ServerChatRequest, NullOptionsAreAbsent) {
  const ChatRequest request = parse_chat_request(body_with(
      R"("model": null, "stream": null, "stream_options": null, "max_tokens": null, "temperature": null, "top_k": null,
         "seed": null, "stop": null, "logprobs": null, "top_logprobs": null, "n": null, "min_pixels": null)"));
  EXPECT_FALSE(request.stream);
  EXPECT_FALSE(request.max_tokens);
  EXPECT_FALSE(request.temperature);
  EXPECT_FALSE(request.top_k);
  EXPECT_FALSE(request.seed);
  EXPECT_FALSE(request.top_logprobs);
  EXPECT_FALSE(request.min_pixels);
}

TEST(ServerChatRequest, IntegralValuesInEitherJsonForm) {
  const ChatRequest request =
      parse_chat_request(body_with(R"("max_tokens": 3.0, "temperature": 1, "seed": 18446744073709551615, "top_k": 40, "n": 1.0)"));
  EXPECT_EQ(request.max_tokens, 3);
  EXPECT_DOUBLE_EQ(*request.temperature, 1.0);
  EXPECT_EQ(request.seed, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(request.top_k, 40);
  EXPECT_EQ(parse_chat_request(body_with(R"("seed": 42)")).seed, 42u);
  EXPECT_EQ(parse_chat_request(body_with(R"("seed": -9223372036854775808)")).seed, 1ull << 63);
  EXPECT_EQ(parse_chat_request(body_with(R"("stop": "###")")).stop, std::vector<std::string>{"###"});
}

TEST(ServerChatRequest, TextKeepsEmbeddedNulAndUnicode) {
  const ChatRequest request = parse_chat_request(messages_body(R"([{"role": "user", "content": "a\u0000b \u00e9 😀"}])"));
  EXPECT_EQ(request.messages[0].content[0].text, std::string("a\0b \xC3\xA9 \xF0\x9F\x98\x80", 11));
}

TEST(ServerChatRequest, EmptyUserContentIsNoParts) {
  EXPECT_TRUE(parse_chat_request(messages_body(R"([{"role": "user", "content": ""}])")).messages[0].content.empty());
  EXPECT_TRUE(parse_chat_request(messages_body(R"([{"role": "user", "content": []}])")).messages[0].content.empty());
}

TEST(ServerChatRequest, BodyThatIsNotAJsonObject) {
  expect_refused("", "", "is not valid JSON");
  expect_refused("{", "", "is not valid JSON");
  expect_refused(R"({"messages": [}])", "", "is not valid JSON");
  expect_refused("NaN", "", "is not valid JSON");
  expect_refused(body_with(R"("temperature": NaN)"), "", "is not valid JSON");
  expect_refused(body_with(R"("temperature": Infinity)"), "", "is not valid JSON");
  expect_refused(body_with(R"("temperature": 1e999)"), "", "number overflow");  // nlohmann refuses what would be infinite
  expect_refused(body_with(R"("max_tokens": -1e999)"), "", "number overflow");
  expect_refused("[1, 2]", "", "must be a JSON object, got array");
  expect_refused("null", "", "must be a JSON object, got null");
  expect_refused("\"text\"", "", "must be a JSON object, got string");
  expect_refused("42", "", "must be a JSON object, got integer");
  expect_refused(body_with("") + "x", "", "is not valid JSON");
}

TEST(ServerChatRequest, BodyWithInvalidUtf8) {
  expect_refused(messages_body("[{\"role\": \"user\", \"content\": \"\xFF\xFE bad\"}]"), "", "is not valid JSON");
  expect_refused(messages_body("[{\"role\": \"user\", \"content\": \"\xC0\xAF\"}]"), "", "is not valid JSON");  // overlong
  expect_refused(body_with("\"stop\": \"\xED\xA0\x80\""), "", "is not valid JSON");  // an encoded surrogate
  expect_refused(body_with(R"("stop": "\ud800")"), "", "is not valid JSON");  // a lone surrogate escape
  expect_refused("\xEF\xBB\xBF\xFF{}", "", "is not valid JSON");
  const std::string long_bad_string = "{\"messages\": \"" + std::string(5000, 'a') + "\xFF\"}";
  const ApiError error = refusal(long_bad_string);
  EXPECT_LT(std::string(error.what()).size(), 600u);  // the parser's echo is cut short
}

TEST(ServerChatRequest, DeepNestingIsRefusedBeforeItIsBuilt) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  expect_refused(deep, "", "deeper than");
  expect_refused(body_with(R"("metadata": )" + std::string(70, '[') + std::string(70, ']')), "", "deeper than");
  // Within the bound, unknown members may nest as they like.
  EXPECT_NO_THROW(parse_chat_request(body_with(R"("metadata": )" + std::string(40, '[') + std::string(40, ']'))));
}

TEST(ServerChatRequest, MessagesMustBeANonEmptyArrayOfObjects) {
  expect_refused("{}", "messages", "required field is missing");
  expect_refused(R"({"messages": null})", "messages", "required field is missing");
  expect_refused(messages_body(R"("hi")"), "messages", "expected an array of messages, got string 'hi'");
  expect_refused(messages_body(R"({"role": "user"})"), "messages", "expected an array of messages, got object");
  expect_refused(messages_body("[]"), "messages", "at least one message");
  expect_refused(messages_body(R"(["hi"])"), "messages[0]", "expected an object, got string");
  expect_refused(messages_body(R"([[{"role": "user", "content": "x"}]])"), "messages[0]", "expected an object, got array");
  RequestLimits limits;
  limits.max_messages = 2;
  expect_refused(messages_body(R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                   {"role": "user", "content": "c"}])"),
                 "messages", "limit of 2", limits);
}

TEST(ServerChatRequest, Roles) {
  expect_refused(messages_body(R"([{"content": "hi"}])"), "messages[0].role", "required field is missing");
  expect_refused(messages_body(R"([{"role": 1, "content": "hi"}])"), "messages[0].role", "expected a string, got integer 1");
  expect_refused(messages_body(R"([{"role": "User", "content": "hi"}])"), "messages[0].role", "unknown role 'User'");
  expect_refused(messages_body(R"([{"role": "", "content": "hi"}])"), "messages[0].role", "unknown role ''");
  expect_refused(messages_body(R"([{"role": "function", "content": "x"}])"), "messages[0].role", "use tool messages");
  const ChatRequest request = parse_chat_request(
      messages_body(R"([{"role": "developer", "content": "rules"}, {"role": "system", "content": "more"},
                        {"role": "user", "content": "hi"}])"));
  EXPECT_EQ(request.messages[0].role, "system");
  EXPECT_EQ(request.messages[1].role, "system");
}

TEST(ServerChatRequest, ToolCallsAndResultsInTheChat) {
  const ChatRequest request = parse_chat_request(messages_body(R"([{"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": null, "reasoning_content": "use the tool", "tool_calls": [{"id": "call_1", "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}},
       {"id": "call_2", "type": "function", "function": {"name": "clock", "arguments": {"zone": "UTC", "a": 1}}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "21 C"},
      {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]}])"));
  ASSERT_EQ(request.messages.size(), 4u);
  const RequestMessage& assistant = request.messages[1];
  EXPECT_TRUE(assistant.content.empty());
  EXPECT_EQ(assistant.reasoning, "use the tool");
  ASSERT_EQ(assistant.tool_calls.size(), 2u);
  EXPECT_EQ(assistant.tool_calls[0].id, "call_1");
  EXPECT_EQ(assistant.tool_calls[0].name, "get_weather");
  EXPECT_EQ(assistant.tool_calls[0].arguments, "{\"city\": \"Paris\", \"unit\": \"celsius\"}");  // the client's text, as sent
  EXPECT_EQ(assistant.tool_calls[1].arguments, "{\"zone\":\"UTC\",\"a\":1}");                  // an object, in its order
  EXPECT_EQ(request.messages[2].role, "tool");
  EXPECT_EQ(request.messages[2].tool_call_id, "call_1");
  EXPECT_EQ(request.messages[3].content.at(0).text, "noon");  // a tool result may end the chat

  expect_refused(messages_body(R"([{"role": "user", "content": "hi", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{}"}}]}])"),
                 "messages[0].tool_calls", "only assistant messages make tool calls");
  expect_refused(messages_body(R"([{"role": "assistant", "content": "x", "tool_calls": {}}, {"role": "user", "content": "ok"}])"),
                 "messages[0].tool_calls", "expected an array");
  expect_refused(messages_body(R"([{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{oops"}}]},
                                   {"role": "user", "content": "ok"}])"),
                 "messages[0].tool_calls[0].function.arguments", "not a JSON object");
  expect_refused(messages_body(R"([{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "[1]"}}]},
                                   {"role": "user", "content": "ok"}])"),
                 "messages[0].tool_calls[0].function.arguments", "expected a JSON object, got array");
  expect_refused(messages_body(R"([{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "", "arguments": "{}"}}]},
                                   {"role": "user", "content": "ok"}])"),
                 "messages[0].tool_calls[0].function.name", "empty");
  expect_refused(messages_body(R"([{"role": "assistant", "tool_calls": [{"type": "retrieval", "function": {"name": "f", "arguments": "{}"}}]},
                                   {"role": "user", "content": "ok"}])"),
                 "messages[0].tool_calls[0].type", "expected \"function\"");
  expect_refused(messages_body(R"([{"role": "assistant", "content": "x", "function_call": {"name": "f"}},
                                   {"role": "user", "content": "ok"}])"),
                 "messages[0].function_call", "not supported");
  expect_refused(messages_body(R"([{"role": "user", "content": "hi", "reasoning_content": "x"}])"), "messages[0].reasoning_content",
                 "only assistant messages");
  expect_refused(messages_body(R"([{"role": "user", "content": "hi", "tool_call_id": "x"}])"), "messages[0].tool_call_id",
                 "only tool messages");
  expect_refused(messages_body(R"([{"role": "user", "content": "hi"}, {"role": "tool", "content": [{"type": "image_url",
                                   "image_url": {"url": "data:image/png;base64,AA=="}}]}])"),
                 "messages[1].content[0]", "only in user messages");
  expect_refused(messages_body(R"([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}])"), "messages",
                 "the last message must be a user message or a tool result");
}

TEST(ServerChatRequest, ChatTemplateKwargs) {
  const std::string chat = R"("messages": [{"role": "user", "content": "hi"}])";
  EXPECT_EQ(parse_chat_request("{" + chat + R"(, "chat_template_kwargs": {"enable_thinking": false, "add_vision_id": true}})")
                .chat_template_kwargs,
            R"({"enable_thinking":false,"add_vision_id":true})");
  EXPECT_EQ(parse_chat_request("{" + chat + "}").chat_template_kwargs, "");
  expect_refused("{" + chat + R"(, "chat_template_kwargs": [1]})", "chat_template_kwargs", "expected an object");
  expect_refused("{" + chat + R"(, "chat_template_kwargs": {"messages": []}})", "chat_template_kwargs", "cannot set \"messages\"");
  expect_refused("{" + chat + R"(, "chat_template_kwargs": {"add_generation_prompt": false}})", "chat_template_kwargs",
                 "cannot set \"add_generation_prompt\"");
  expect_refused("{" + chat + R"(, "chat_template_kwargs": {"add_vision_id": "yes"}})", "chat_template_kwargs.add_vision_id",
                 "expected true or false");
}

TEST(ServerChatRequest, ToolsAndToolChoice) {
  const std::string weather =
      R"({"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": {"type": "object",
          "properties": {"unit": {"enum": ["c", "f"]}, "city": {"type": "string"}}, "required": ["city"]}}})";
  const std::string chat = R"("messages": [{"role": "user", "content": "hi"}])";
  const ChatRequest request = parse_chat_request("{" + chat + R"(, "tools": [)" + weather + R"(], "tool_choice": "required"})");
  ASSERT_EQ(request.tools.size(), 1u);
  // Compact, members in the order sent (the template's tojson shows them in that order).
  EXPECT_EQ(request.tools[0],
            R"({"type":"function","function":{"name":"get_weather","description":"d","parameters":{"type":"object","properties":{"unit":{"enum":["c","f"]},"city":{"type":"string"}},"required":["city"]}}})");
  EXPECT_EQ(request.tool_choice.mode, ToolChoice::Mode::Required);
  EXPECT_EQ(parse_chat_request("{" + chat + R"(, "tools": [)" + weather + R"(]})").tool_choice.mode, ToolChoice::Mode::Auto);
  EXPECT_EQ(parse_chat_request("{" + chat + R"(, "tools": [)" + weather + R"(], "tool_choice": "none"})").tool_choice.mode,
            ToolChoice::Mode::None);
  const ChatRequest named = parse_chat_request(
      "{" + chat + R"(, "tools": [)" + weather + R"(], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})");
  EXPECT_EQ(named.tool_choice.mode, ToolChoice::Mode::Function);
  EXPECT_EQ(named.tool_choice.function, "get_weather");

  expect_refused("{" + chat + R"(, "tools": {}})", "tools", "expected an array");
  expect_refused("{" + chat + R"(, "tools": [{"type": "code_interpreter"}]})", "tools[0].type", "only \"function\" tools");
  expect_refused("{" + chat + R"(, "tools": [{"type": "function", "function": {"name": ""}}]})", "tools[0].function.name", "empty");
  expect_refused("{" + chat + R"(, "tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]})",
                 "tools[0].function.parameters", "expected an object");
  expect_refused("{" + chat + R"(, "tool_choice": "required"})", "tool_choice", "\"required\" needs tools");
  expect_refused("{" + chat + R"(, "tools": [)" + weather + R"(], "tool_choice": "always"})", "tool_choice", "expected \"none\"");
  expect_refused("{" + chat + R"(, "tools": [)" + weather + R"(], "tool_choice": {"type": "function", "function": {"name": "nope"}}})",
                 "tool_choice", "no tool named \"nope\"");
  expect_refused("{" + chat + R"(, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                     "properties": {"a": {"type": "string", "pattern": "^x+$"}}}}}], "tool_choice": "required"})",
                 "tool_choice", "pattern");
  expect_refused("{" + chat + R"(, "tools": [)" + weather + R"(], "tool_choice": "required", "response_format": {"type": "json_object"}})",
                 "tool_choice", "cannot both hold the reply");
  std::string many = "{" + chat + R"(, "tools": [)";
  for (int i = 0; i < 129; ++i) many += std::string(i ? "," : "") + R"({"type": "function", "function": {"name": "f"}})";
  expect_refused(many + "]}", "tools", "more than this server's limit of 128");
}

TEST(ServerChatRequest, ContentShapes) {
  expect_refused(messages_body(R"([{"role": "user"}])"), "messages[0].content", "a user message needs content");
  expect_refused(messages_body(R"([{"role": "user", "content": null}])"), "messages[0].content", "needs content");
  expect_refused(messages_body(R"([{"role": "system"}, {"role": "user", "content": "hi"}])"), "messages[0].content",
                 "a system message needs content");
  expect_refused(messages_body(R"([{"role": "user", "content": 5}])"), "messages[0].content",
                 "expected a string or an array of content parts, got integer 5");
  expect_refused(messages_body(R"([{"role": "user", "content": {"type": "text", "text": "hi"}}])"), "messages[0].content",
                 "got object");
  expect_refused(messages_body(R"([{"role": "user", "content": true}])"), "messages[0].content", "got boolean true");
  expect_refused(messages_body(R"([{"role": "user", "content": ["hi"]}])"), "messages[0].content[0]",
                 "expected an object, got string 'hi'");
  expect_refused(messages_body(R"([{"role": "user", "content": [{"text": "hi"}]}])"), "messages[0].content[0].type",
                 "required field is missing");
  expect_refused(messages_body(R"([{"role": "user", "content": [{"type": 3}]}])"), "messages[0].content[0].type",
                 "expected a string, got integer 3");
  expect_refused(messages_body(R"([{"role": "user", "content": [{"type": "image"}]}])"), "messages[0].content[0].type",
                 "unknown content part type 'image'");
  expect_refused(messages_body(R"([{"role": "user", "content": [{"type": "file", "file": {}}]}])"),
                 "messages[0].content[0].type", "expected text, image_url or video_url");
  expect_refused(messages_body(R"([{"role": "user", "content": [{"type": "refusal", "refusal": "x"}]}])"),
                 "messages[0].content[0].type", "unknown content part type 'refusal'");
}

TEST(ServerChatRequest, TextPartErrorsNameTheFullPath) {
  const std::string body = messages_body(
      R"([{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": 5}]}])");
  const ApiError error = refusal(body);
  EXPECT_EQ(error.param(), "messages[1].content[0].text");
  EXPECT_STREQ(error.what(), "messages[1].content[0].text: expected a string, got integer 5");
  expect_refused(messages_body(R"([{"role": "user", "content": [{"type": "text"}]}])"), "messages[0].content[0].text",
                 "required field is missing");
  expect_refused(messages_body(R"([{"role": "user", "content": [{"type": "text", "text": ["a"]}]}])"),
                 "messages[0].content[0].text", "got array");
}

TEST(ServerChatRequest, MediaPartShapes) {
  const auto user_part = [](const std::string& part) { return messages_body(R"([{"role": "user", "content": [)" + part + "]}]"); };
  expect_refused(user_part(R"({"type": "image_url"})"), "messages[0].content[0].image_url", "required field is missing");
  expect_refused(user_part(R"({"type": "image_url", "image_url": 7})"), "messages[0].content[0].image_url",
                 "expected an object with a url");
  expect_refused(user_part(R"({"type": "image_url", "image_url": {}})"), "messages[0].content[0].image_url.url",
                 "required field is missing");
  expect_refused(user_part(R"({"type": "image_url", "image_url": {"url": 1}})"), "messages[0].content[0].image_url.url",
                 "expected a string, got integer 1");
  expect_refused(user_part(R"({"type": "image_url", "image_url": {"url": ""}})"), "messages[0].content[0].image_url.url",
                 "the URL is empty");
  expect_refused(user_part(R"({"type": "image_url", "image_url": ""})"), "messages[0].content[0].image_url", "the URL is empty");
  expect_refused(user_part(R"({"type": "image_url", "image_url": {"url": "a.png", "detail": 2}})"),
                 "messages[0].content[0].image_url.detail", "expected a string");
  expect_refused(user_part(R"({"type": "image_url", "url": "a.png"})"), "messages[0].content[0].image_url",
                 "required field is missing");
  expect_refused(user_part(R"({"type": "video_url", "video_url": {"url": false}})"), "messages[0].content[0].video_url.url",
                 "got boolean false");
  expect_refused(user_part(R"({"type": "video_url", "image_url": {"url": "a.mp4"}})"), "messages[0].content[0].video_url",
                 "required field is missing");
  expect_refused(user_part(R"({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}})"),
                 "messages[0].content[0]", "audio is not supported");
  const ChatRequest video = parse_chat_request(user_part(R"({"type": "video_url", "video_url": "clip.mp4"})"));
  EXPECT_EQ(video.messages[0].content[0].kind, RequestPart::Kind::Video);
  EXPECT_EQ(video.messages[0].content[0].text, "clip.mp4");
}

TEST(ServerChatRequest, MediaOnlyInUserMessages) {
  expect_refused(messages_body(R"([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "a.png"}}]},
                                   {"role": "user", "content": "hi"}])"),
                 "messages[0].content[0]", "only in user messages, not in system messages");
  expect_refused(messages_body(R"([{"role": "user", "content": "hi"}, {"role": "assistant", "content": [
                                     {"type": "text", "text": "here"}, {"type": "video_url", "video_url": {"url": "a.mp4"}}]},
                                   {"role": "user", "content": "hi"}])"),
                 "messages[1].content[1]", "not in assistant messages");
}

TEST(ServerChatRequest, LastMessageMustBeUser) {
  expect_refused(messages_body(R"([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])"),
                 "messages", "the last message must be a user message");
  expect_refused(messages_body(R"([{"role": "system", "content": "s"}])"), "messages", "got system");
}

TEST(ServerChatRequest, MediaItemsAreCountedOverAllMessages) {
  RequestLimits limits;
  limits.max_media_items = 2;
  const std::string image = R"({"type": "image_url", "image_url": {"url": "a.png"}})";
  const std::string video = R"({"type": "video_url", "video_url": {"url": "a.mp4"}})";
  const std::string two = messages_body(R"([{"role": "user", "content": [)" + image + "," + video + R"(]}])");
  EXPECT_NO_THROW(parse_chat_request(two, limits));
  const std::string three = messages_body(R"([{"role": "user", "content": [)" + image + "," + image +
                                          R"(]}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": [)" + video +
                                          R"(]}])");
  expect_refused(three, "messages", "more than 2 images and videos", limits);
}

// Every parameter with a wrong type or value: {members, param, phrase}.
struct BadParameter {
  std::string members;
  std::string param;
  std::string phrase;
};

TEST(ServerChatRequest, EveryParameterRefusesWrongTypesAndRanges) {
  const std::vector<BadParameter> cases = {
      {R"("model": 5)", "model", "expected a string, got integer 5"},
      {R"("model": ["a"])", "model", "expected a string, got array"},
      {R"("stream": "yes")", "stream", "expected true or false, got string 'yes'"},
      {R"("stream": 1)", "stream", "expected true or false"},
      {R"("stream_options": {"include_usage": true})", "stream_options", "only allowed when stream is true"},
      {R"("stream": false, "stream_options": {})", "stream_options", "only allowed when stream is true"},
      {R"("stream": true, "stream_options": 3)", "stream_options", "expected an object, got integer 3"},
      {R"("stream": true, "stream_options": {"include_usage": "yes"})", "stream_options.include_usage", "expected true or false"},
      {R"("max_tokens": 0)", "max_tokens", "at least 1"},
      {R"("max_tokens": -5)", "max_tokens", "at least 1"},
      {R"("max_tokens": 4097)", "max_tokens", "at most 4096 tokens per reply (max_tokens_cap)"},
      {R"("max_tokens": 3.5)", "max_tokens", "expected an integer, got number 3.5"},
      {R"("max_tokens": "10")", "max_tokens", "expected an integer, got string '10'"},
      {R"("max_tokens": true)", "max_tokens", "expected an integer"},
      {R"("max_tokens": 1e300)", "max_tokens", "expected an integer"},
      {R"("max_tokens": 18446744073709551615)", "max_tokens", "out of range"},
      {R"("max_tokens": 99999999999999999999999)", "max_tokens", "expected an integer"},
      {R"("max_completion_tokens": 0, "max_tokens": 10)", "max_completion_tokens", "at least 1"},
      {R"("max_completion_tokens": 10, "max_tokens": 100000)", "max_tokens", "max_tokens_cap"},
      {R"("temperature": 2.5)", "temperature", "out of range (expected a number from 0 to 2)"},
      {R"("temperature": -0.1)", "temperature", "out of range"},
      {R"("temperature": "hot")", "temperature", "expected a number, got string 'hot'"},
      {R"("temperature": [1])", "temperature", "expected a number, got array"},
      {R"("top_p": 0)", "top_p", "above 0 and at most 1"},
      {R"("top_p": 1.5)", "top_p", "out of range"},
      {R"("top_p": {})", "top_p", "expected a number"},
      {R"("min_p": -0.1)", "min_p", "from 0 to 1"},
      {R"("min_p": 1.01)", "min_p", "from 0 to 1"},
      {R"("top_k": -2)", "top_k", "expected an integer >= 0"},
      {R"("top_k": 2.5)", "top_k", "expected an integer"},
      {R"("top_k": "40")", "top_k", "expected an integer"},
      {R"("repetition_penalty": 0)", "repetition_penalty", "above 0"},
      {R"("repetition_penalty": -1)", "repetition_penalty", "above 0"},
      {R"("presence_penalty": 2.1)", "presence_penalty", "from -2 to 2"},
      {R"("frequency_penalty": -2.5)", "frequency_penalty", "from -2 to 2"},
      {R"("frequency_penalty": null, "presence_penalty": false)", "presence_penalty", "expected a number"},
      {R"("seed": "1")", "seed", "expected an integer"},
      {R"("seed": 1.5)", "seed", "expected an integer"},
      {R"("seed": -1e30)", "seed", "expected an integer"},
      {R"("seed": 1e30)", "seed", "expected an integer"},
      {R"("stop": 5)", "stop", "expected a string or an array of strings, got integer 5"},
      {R"("stop": {"a": 1})", "stop", "expected a string or an array of strings"},
      {R"("stop": [1])", "stop[0]", "expected a string, got integer 1"},
      {R"("stop": ["a", null])", "stop[1]", "expected a string, got null"},
      {R"("stop": "")", "stop", "must not be empty"},
      {R"("stop": ["x", ""])", "stop[1]", "must not be empty"},
      {R"("stop": ")" + std::string(257, 'x') + "\"", "stop", "limit of 256 (max_stop_string_bytes)"},
      {R"("stop": ["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"])", "stop",
       "17 stop strings, more than this server's limit of 16"},
      {R"("logprobs": 1)", "logprobs", "expected true or false"},
      {R"("top_logprobs": 5)", "top_logprobs", "needs logprobs: true"},
      {R"("logprobs": false, "top_logprobs": 0)", "top_logprobs", "needs logprobs: true"},
      {R"("logprobs": true, "top_logprobs": 21)", "top_logprobs", "from 0 to 20 (max_top_logprobs)"},
      {R"("logprobs": true, "top_logprobs": -1)", "top_logprobs", "from 0 to 20"},
      {R"("logprobs": true, "top_logprobs": "3")", "top_logprobs", "expected an integer"},
      {R"("n": 2)", "n", "n must be 1: q3vl returns one choice"},
      {R"("n": 0)", "n", "n must be 1"},
      {R"("n": "1")", "n", "expected an integer"},
      {R"("min_pixels": 0)", "min_pixels", "expected a positive integer, got 0"},
      {R"("max_pixels": -5)", "max_pixels", "positive integer"},
      {R"("max_pixels": 1.5)", "max_pixels", "expected an integer"},
      {R"("min_pixels": 1000, "max_pixels": 999)", "min_pixels", "more than max_pixels"},
  };
  for (const BadParameter& bad : cases) expect_refused(body_with(bad.members), bad.param, bad.phrase);
}

TEST(ServerChatRequest, LimitsComeFromTheServer) {
  RequestLimits limits;
  limits.max_tokens_cap = 10;
  limits.max_stop_strings = 1;
  limits.max_stop_string_bytes = 3;
  limits.max_top_logprobs = 2;
  expect_refused(body_with(R"("max_tokens": 11)"), "max_tokens", "at most 10 tokens", limits);
  EXPECT_EQ(parse_chat_request(body_with(R"("max_tokens": 10)"), limits).max_tokens, 10);
  expect_refused(body_with(R"("stop": ["a", "b"])"), "stop", "limit of 1", limits);
  expect_refused(body_with(R"("stop": "abcd")"), "stop", "4 bytes", limits);
  EXPECT_EQ(parse_chat_request(body_with(R"("stop": "\u00e9a")"), limits).stop.size(), 1u);  // 3 bytes
  expect_refused(body_with(R"("logprobs": true, "top_logprobs": 3)"), "top_logprobs", "from 0 to 2", limits);
}

TEST(ServerApiError, TypesFollowOpenAI) {
  EXPECT_EQ(ApiError(400, "").type(), "invalid_request_error");
  EXPECT_EQ(ApiError(404, "").type(), "invalid_request_error");
  EXPECT_EQ(ApiError(413, "").type(), "invalid_request_error");
  EXPECT_EQ(ApiError(401, "").type(), "authentication_error");
  EXPECT_EQ(ApiError(429, "").type(), "rate_limit_error");
  EXPECT_EQ(ApiError(500, "").type(), "server_error");
  EXPECT_EQ(ApiError(503, "").type(), "server_error");
  const ApiError error(400, "too long", "messages", "context_length_exceeded");
  EXPECT_EQ(error.param(), "messages");
  EXPECT_EQ(error.code(), "context_length_exceeded");
  EXPECT_STREQ(error.what(), "too long");
}

TEST(ServerApiError, ExcerptsAreShortAndValidUtf8) {
  EXPECT_EQ(quoted_excerpt("abc"), "'abc'");
  EXPECT_EQ(quoted_excerpt(std::string(100, 'x'), 4), "'xxxx...'");
  EXPECT_EQ(quoted_excerpt("\xC3\xA9\xC3\xA9", 3), "'\xC3\xA9...'");  // never half a character
  EXPECT_EQ(message_excerpt("a\xFF" "b", 10), "a\xEF\xBF\xBD" "b");       // invalid bytes become U+FFFD
  EXPECT_EQ(message_excerpt("", 10), "");
}

}  // namespace
}  // namespace q3vl::server
