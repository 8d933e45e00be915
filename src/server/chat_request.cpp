#include "server/chat_request.h"

#include "engine/json_schema.h"
#include "engine/tool_calls.h"

#include <cmath>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "util/json_fields.h"

namespace q3vl::server {
namespace {

// Ordered: tool definitions and schemas keep their members' order (a template's tojson shows it,
// and a schema's properties are generated in it).
using json = nlohmann::ordered_json;

constexpr std::string_view kBodySource = "the request body";

// The type and, for scalars, a short echo of the value: `string 'abc'`, `number 4.5`, `object`.
std::string describe(const json& value) {
  std::string out = json_type_name(value);
  if (value.is_string()) {
    out += " " + quoted_excerpt(value.get_ref<const std::string&>());
  } else if (value.is_number() || value.is_boolean()) {
    out += " " + value.dump();
  }
  return out;
}

// A value in the request body with its field path (`messages[1].content[0].text`); every error it
// raises is a 400 whose `param` is that path.
class Field {
 public:
  Field(const json& value, std::string path) : value_(&value), path_(std::move(path)) {}

  const json& value() const { return *value_; }
  const std::string& path() const { return path_; }

  [[noreturn]] void fail(const std::string& what) const { throw ApiError(400, path_ + ": " + what, path_); }
  [[noreturn]] void expected(const std::string& what) const { fail("expected " + what + ", got " + describe(*value_)); }

  std::string child_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  // An object member; null counts as absent (clients send null for options they leave unset).
  std::optional<Field> member(std::string_view key) const {
    const auto it = value_->find(key);
    if (it == value_->end() || it->is_null()) return std::nullopt;
    return Field(*it, child_path(key));
  }
  Field required(std::string_view key) const {
    std::optional<Field> field = member(key);
    if (!field) {
      const std::string path = child_path(key);
      throw ApiError(400, path + ": required field is missing", path);
    }
    return *field;
  }

  const Field& require_object() const {
    if (!value_->is_object()) expected("an object");
    return *this;
  }
  std::vector<Field> items() const {
    if (!value_->is_array()) expected("an array");
    std::vector<Field> out;
    out.reserve(value_->size());
    for (std::size_t i = 0; i < value_->size(); ++i) out.emplace_back((*value_)[i], path_ + "[" + std::to_string(i) + "]");
    return out;
  }
  std::string string() const {
    if (!value_->is_string()) expected("a string");
    return value_->get<std::string>();
  }
  bool boolean() const {
    if (!value_->is_boolean()) expected("true or false");
    return value_->get<bool>();
  }
  // A finite number; integers are numbers too.
  double number() const {
    if (!value_->is_number()) expected("a number");
    const double number = value_->get<double>();
    if (!std::isfinite(number)) fail("the number is out of range");
    return number;
  }
  // An integer; a float with no fraction (3.0) counts, 3.5 does not.
  std::int64_t integer() const {
    if (value_->is_number_unsigned()) {
      const auto value = value_->get<std::uint64_t>();
      if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        fail("integer " + value_->dump() + " is out of range");
      }
      return static_cast<std::int64_t>(value);
    }
    if (value_->is_number_integer()) return value_->get<std::int64_t>();
    if (value_->is_number_float()) {
      const double value = value_->get<double>();
      constexpr double kTwoTo63 = 9223372036854775808.0;
      if (std::isfinite(value) && value == std::trunc(value) && value >= -kTwoTo63 && value < kTwoTo63) {
        return static_cast<std::int64_t>(value);
      }
    }
    expected("an integer");
  }
  // A 64-bit seed: any integer from -2^63 to 2^64 - 1, negative ones taken as their two's
  // complement bits (-1 is 2^64 - 1), so every seed a client's int64 or uint64 holds is accepted.
  std::uint64_t seed_bits() const {
    if (value_->is_number_unsigned()) return value_->get<std::uint64_t>();
    if (value_->is_number_float()) {
      const double value = value_->get<double>();
      constexpr double kTwoTo64 = 18446744073709551616.0;
      if (value >= 0 && value < kTwoTo64 && value == std::trunc(value)) return static_cast<std::uint64_t>(value);
    }
    return static_cast<std::uint64_t>(integer());
  }

 private:
  const json* value_;
  std::string path_;
};

// A number member checked against [low, high] (or (low, high] when `low_open`); `range` says the
// allowed values in the message.
std::optional<double> number_in_range(const Field& body, std::string_view key, double low, double high, bool low_open,
                                      const std::string& range) {
  const std::optional<Field> field = body.member(key);
  if (!field) return std::nullopt;
  const double value = field->number();
  if ((low_open ? value <= low : value < low) || value > high) {
    field->fail(field->value().dump() + " is out of range (expected " + range + ")");
  }
  return value;
}

std::optional<std::int64_t> positive_integer(const Field& body, std::string_view key) {
  const std::optional<Field> field = body.member(key);
  if (!field) return std::nullopt;
  const std::int64_t value = field->integer();
  if (value < 1) field->fail("expected a positive integer, got " + std::to_string(value));
  return value;
}

struct MediaCounter {
  std::int64_t count = 0;
  std::int64_t limit = 0;
  void add() {
    if (++count > limit) {
      throw ApiError(400, "messages: more than " + std::to_string(limit) +
                              " images and videos in one request (this server's limit, max_media_items)",
                     "messages");
    }
  }
};

// An image_url/video_url part's URL: {"url": ..., "detail": ...} as OpenAI sends it, or the URL
// given directly as a string, as some clients do.
std::string media_url(const Field& part, std::string_view kind) {
  const Field holder = part.required(kind);
  if (holder.value().is_string()) {
    std::string url = holder.string();
    if (url.empty()) holder.fail("the URL is empty");
    return url;
  }
  if (!holder.value().is_object()) holder.expected("an object with a url (or the URL as a string)");
  const Field url_field = holder.required("url");
  std::string url = url_field.string();
  if (url.empty()) url_field.fail("the URL is empty");
  if (const std::optional<Field> detail = holder.member("detail")) detail->string();  // checked, then ignored
  return url;
}

void parse_parts(const Field& content, const std::string& role, RequestMessage& message, MediaCounter& media) {
  for (const Field& part : content.items()) {
    part.require_object();
    const Field type_field = part.required("type");
    const std::string type = type_field.string();
    if (type == "text") {
      message.content.push_back({RequestPart::Kind::Text, part.required("text").string()});
    } else if (type == "image_url" || type == "video_url") {
      if (role != "user") part.fail("images and videos are accepted only in user messages, not in " + role + " messages");
      const RequestPart::Kind kind = type == "image_url" ? RequestPart::Kind::Image : RequestPart::Kind::Video;
      std::string url = media_url(part, type);
      media.add();
      message.content.push_back({kind, std::move(url)});
    } else if (type == "input_audio") {
      part.fail("audio is not supported (q3vl takes text, images and videos)");
    } else if (type == "refusal" && role == "assistant") {
      // An earlier refusal the client replays: not part of what the model said, like `refusal`.
    } else {
      type_field.fail("unknown content part type " + quoted_excerpt(type) + " (expected text, image_url or video_url)");
    }
  }
}

// An assistant message's earlier call: {"id", "type": "function", "function": {"name", "arguments"}},
// the arguments a string holding a JSON object (OpenAI), or the object itself.
FunctionCall parse_tool_call(const Field& call) {
  call.require_object();
  if (const std::optional<Field> type = call.member("type"); type && type->string() != "function") {
    type->fail("expected \"function\"");
  }
  FunctionCall out;
  if (const std::optional<Field> id = call.member("id")) out.id = id->string();
  const Field function = call.required("function");
  function.require_object();
  const Field name = function.required("name");
  out.name = name.string();
  if (out.name.empty()) name.fail("the function name is empty");
  const Field arguments = function.required("arguments");
  if (arguments.value().is_object()) {
    out.arguments = arguments.value().dump();
    return out;
  }
  out.arguments = arguments.string();
  json parsed;
  try {
    parsed = parse_ordered_json_bounded(out.arguments, "the arguments");
  } catch (const InvalidInput& e) {
    arguments.fail(std::string("not a JSON object: ") + e.what());
  }
  if (!parsed.is_object()) arguments.fail("expected a JSON object, got " + json_type_name(parsed));
  return out;
}

RequestMessage parse_message(const Field& field, MediaCounter& media) {
  field.require_object();
  const Field role_field = field.required("role");
  RequestMessage message;
  message.role = role_field.string();
  if (message.role == "developer") message.role = "system";  // OpenAI's newer name for it
  if (message.role == "function") role_field.fail("function messages (OpenAI's deprecated API) are not supported: use tool messages");
  if (message.role != "system" && message.role != "user" && message.role != "assistant" && message.role != "tool") {
    role_field.fail("unknown role " + quoted_excerpt(message.role) + " (expected system, developer, user, assistant or tool)");
  }
  if (const std::optional<Field> calls = field.member("tool_calls")) {
    // Clients often send an empty list for "no calls" on any message.
    if (message.role != "assistant" && !(calls->value().is_array() && calls->value().empty())) {
      calls->fail("only assistant messages make tool calls");
    }
    for (const Field& call : calls->items()) message.tool_calls.push_back(parse_tool_call(call));
  }
  if (const std::optional<Field> call = field.member("function_call")) call->fail("function_call (OpenAI's deprecated API) is not supported: use tool_calls");
  if (const std::optional<Field> reasoning = field.member("reasoning_content")) {
    if (message.role != "assistant") reasoning->fail("only assistant messages carry reasoning");
    message.reasoning = reasoning->string();
  }
  if (const std::optional<Field> id = field.member("tool_call_id")) {
    if (message.role != "tool") id->fail("only tool messages answer a tool call");
    message.tool_call_id = id->string();
  }

  const std::optional<Field> content = field.member("content");
  if (!content) {
    if (message.role == "assistant") return message;  // a reply that was only tool calls or a refusal
    const std::string path = field.child_path("content");
    throw ApiError(400, path + ": a " + message.role + " message needs content", path);
  }
  if (content->value().is_string()) {
    std::string text = content->string();
    if (!text.empty()) message.content.push_back({RequestPart::Kind::Text, std::move(text)});
  } else if (content->value().is_array()) {
    parse_parts(*content, message.role, message, media);
  } else {
    content->expected("a string or an array of content parts");
  }
  return message;
}

std::vector<RequestMessage> parse_messages(const Field& body, const RequestLimits& limits) {
  const Field messages = body.required("messages");
  if (!messages.value().is_array()) messages.expected("an array of messages");
  if (messages.value().empty()) messages.fail("at least one message is needed");
  if (static_cast<std::uint64_t>(messages.value().size()) > static_cast<std::uint64_t>(limits.max_messages)) {
    messages.fail(std::to_string(messages.value().size()) + " messages, more than this server's limit of " +
                  std::to_string(limits.max_messages) + " (max_messages)");
  }
  MediaCounter media{0, limits.max_media_items};
  std::vector<RequestMessage> out;
  out.reserve(messages.value().size());
  for (const Field& message : messages.items()) out.push_back(parse_message(message, media));
  if (out.back().role != "user" && out.back().role != "tool") {
    messages.fail("the last message must be a user message or a tool result (q3vl writes the assistant's reply to it), got " +
                  out.back().role);
  }
  return out;
}

std::vector<std::string> parse_stop(const Field& stop, const RequestLimits& limits) {
  std::vector<Field> entries;
  if (stop.value().is_string()) {
    entries.push_back(stop);
  } else if (stop.value().is_array()) {
    entries = stop.items();
    if (static_cast<std::uint64_t>(entries.size()) > static_cast<std::uint64_t>(limits.max_stop_strings)) {
      stop.fail(std::to_string(entries.size()) + " stop strings, more than this server's limit of " +
                std::to_string(limits.max_stop_strings) + " (max_stop_strings)");
    }
  } else {
    stop.expected("a string or an array of strings");
  }
  std::vector<std::string> out;
  for (const Field& entry : entries) {
    // The JSON parser has already refused invalid UTF-8 and lone surrogate escapes.
    std::string text = entry.string();
    if (text.empty()) entry.fail("a stop string must not be empty");
    if (static_cast<std::uint64_t>(text.size()) > static_cast<std::uint64_t>(limits.max_stop_string_bytes)) {
      entry.fail("a stop string of " + std::to_string(text.size()) + " bytes, more than this server's limit of " +
                 std::to_string(limits.max_stop_string_bytes) + " (max_stop_string_bytes)");
    }
    out.push_back(std::move(text));
  }
  return out;
}

// OpenAI's response_format: {"type": "text"}, {"type": "json_object"}, or {"type": "json_schema",
// "json_schema": {"name": ..., "schema": {...}, "strict": ...}}. The schema is compiled here, so
// what constrained decoding cannot enforce is a 400 naming it before the request waits for a slot.
ResponseFormat parse_response_format(const Field& format, const RequestLimits& limits) {
  format.require_object();
  const std::string type = format.required("type").string();
  ResponseFormat out;
  if (type == "text") return out;
  if (type == "json_object") {
    out.kind = ResponseFormat::Kind::JsonObject;
    return out;
  }
  if (type != "json_schema") format.required("type").fail("expected text, json_object or json_schema, got " + type);
  const Field spec = format.required("json_schema");
  spec.require_object();
  const Field schema = spec.required("schema");
  schema.require_object();
  out.kind = ResponseFormat::Kind::JsonSchema;
  out.schema = schema.value().dump();
  if (out.schema.size() > limits.max_schema_bytes) {
    schema.fail("the schema is " + std::to_string(out.schema.size()) + " bytes, more than this server takes (" +
                std::to_string(limits.max_schema_bytes) + ")");
  }
  try {
    JsonSchema::compile(schema.value());
  } catch (const InvalidInput& e) {
    schema.fail(e.what());
  }
  return out;
}

// OpenAI's tools: [{"type": "function", "function": {"name", "description", "parameters"}}].
std::vector<std::string> parse_tools(const Field& tools, const RequestLimits& limits) {
  if (!tools.value().is_array()) tools.expected("an array of tools");
  if (static_cast<std::uint64_t>(tools.value().size()) > static_cast<std::uint64_t>(limits.max_tools)) {
    tools.fail(std::to_string(tools.value().size()) + " tools, more than this server's limit of " + std::to_string(limits.max_tools) +
               " (max_tools)");
  }
  std::vector<std::string> out;
  std::size_t bytes = 0;
  for (const Field& tool : tools.items()) {
    tool.require_object();
    if (tool.required("type").string() != "function") tool.required("type").fail("only \"function\" tools are supported");
    const Field function = tool.required("function");
    function.require_object();
    if (function.required("name").string().empty()) function.required("name").fail("the function name is empty");
    if (const std::optional<Field> description = function.member("description")) description->string();
    if (const std::optional<Field> parameters = function.member("parameters")) parameters->require_object();
    out.push_back(tool.value().dump());
    bytes += out.back().size();
    if (bytes > limits.max_tools_bytes) {
      tools.fail("the tool definitions take more than this server's limit of " + std::to_string(limits.max_tools_bytes) + " bytes");
    }
  }
  return out;
}

// "none", "auto", "required", or {"type": "function", "function": {"name": ...}}.
ToolChoice parse_tool_choice(const Field& choice) {
  ToolChoice out;
  if (choice.value().is_string()) {
    const std::string mode = choice.string();
    if (mode == "auto") return out;
    if (mode == "none") out.mode = ToolChoice::Mode::None;
    else if (mode == "required") out.mode = ToolChoice::Mode::Required;
    else choice.fail("expected \"none\", \"auto\", \"required\" or a function, got " + quoted_excerpt(mode));
    return out;
  }
  choice.require_object();
  if (choice.required("type").string() != "function") choice.required("type").fail("expected \"function\"");
  const Field function = choice.required("function");
  function.require_object();
  out.mode = ToolChoice::Mode::Function;
  out.function = function.required("name").string();
  return out;
}

void parse_parameters(const Field& body, const RequestLimits& limits, ChatRequest& request) {
  if (const auto model = body.member("model")) request.model = model->string();

  if (const auto stream = body.member("stream")) request.stream = stream->boolean();
  if (const auto options = body.member("stream_options")) {
    options->require_object();
    if (!request.stream) options->fail("stream_options is only allowed when stream is true");
    if (const auto usage = options->member("include_usage")) request.include_usage = usage->boolean();
  }

  // max_completion_tokens is OpenAI's current name; max_tokens the older one, still sent by many clients.
  for (const std::string_view key : {"max_completion_tokens", "max_tokens"}) {
    const std::optional<Field> field = body.member(key);
    if (!field) continue;
    const std::int64_t value = field->integer();
    if (value < 1) field->fail("expected at least 1 token, got " + std::to_string(value));
    if (value > limits.max_tokens_cap) {
      field->fail(std::to_string(value) + " is more than this server allows: at most " +
                  std::to_string(limits.max_tokens_cap) + " tokens per reply (max_tokens_cap)");
    }
    if (!request.max_tokens) request.max_tokens = value;
  }

  constexpr double kUnbounded = std::numeric_limits<double>::max();
  request.temperature = number_in_range(body, "temperature", 0, 2, false, "a number from 0 to 2");
  request.top_p = number_in_range(body, "top_p", 0, 1, true, "a number above 0 and at most 1");
  request.min_p = number_in_range(body, "min_p", 0, 1, false, "a number from 0 to 1");
  request.repetition_penalty = number_in_range(body, "repetition_penalty", 0, kUnbounded, true, "a number above 0");
  request.presence_penalty = number_in_range(body, "presence_penalty", -2, 2, false, "a number from -2 to 2");
  request.frequency_penalty = number_in_range(body, "frequency_penalty", -2, 2, false, "a number from -2 to 2");

  if (const auto top_k = body.member("top_k")) {
    const std::int64_t value = top_k->integer();
    if (value < -1) top_k->fail("expected an integer >= 0 (0 or -1: off), got " + std::to_string(value));
    request.top_k = value == -1 ? 0 : value;  // vLLM's spelling of "off"
  }
  if (const auto seed = body.member("seed")) request.seed = seed->seed_bits();
  if (const auto stop = body.member("stop")) request.stop = parse_stop(*stop, limits);

  if (const auto logprobs = body.member("logprobs")) request.logprobs = logprobs->boolean();
  if (const auto top_logprobs = body.member("top_logprobs")) {
    const std::int64_t value = top_logprobs->integer();
    if (value < 0 || value > limits.max_top_logprobs) {
      top_logprobs->fail("expected an integer from 0 to " + std::to_string(limits.max_top_logprobs) +
                         " (max_top_logprobs), got " + std::to_string(value));
    }
    if (!request.logprobs) top_logprobs->fail("top_logprobs needs logprobs: true");
    request.top_logprobs = value;
  }

  if (const auto format = body.member("response_format")) request.response_format = parse_response_format(*format, limits);

  if (const auto kwargs = body.member("chat_template_kwargs")) {
    kwargs->require_object();
    for (const char* reserved : {"messages", "tools", "documents", "add_generation_prompt"}) {
      if (kwargs->value().contains(reserved)) kwargs->fail(std::string("cannot set \"") + reserved + "\": it comes from the request");
    }
    if (const auto vision_id = kwargs->member("add_vision_id")) vision_id->boolean();
    request.chat_template_kwargs = kwargs->value().dump();
    if (request.chat_template_kwargs.size() > limits.max_schema_bytes) kwargs->fail("more than this server takes");
  }
  if (const auto tools = body.member("tools")) request.tools = parse_tools(*tools, limits);
  if (const auto choice = body.member("tool_choice")) {
    request.tool_choice = parse_tool_choice(*choice);
    // What the engine would refuse later (a name no tool has, parameters it cannot constrain), now.
    try {
      const std::vector<ToolDefinition> tools = read_tool_definitions(request.tools, request.tool_choice);
      if (request.tool_choice.mode == ToolChoice::Mode::Required || request.tool_choice.mode == ToolChoice::Mode::Function) {
        if (request.response_format.kind != ResponseFormat::Kind::Text) {
          choice->fail("a required tool call and response_format cannot both hold the reply: ask for one of them");
        }
        JsonSchema::compile(tool_call_schema(tools, request.tool_choice));
      }
    } catch (const InvalidInput& e) {
      choice->fail(e.what());
    }
  }

  if (const auto n = body.member("n")) {
    if (n->integer() != 1) throw ApiError(400, "n must be 1: q3vl returns one choice", "n");
  }

  request.min_pixels = positive_integer(body, "min_pixels");
  request.max_pixels = positive_integer(body, "max_pixels");
  if (request.min_pixels && request.max_pixels && *request.min_pixels > *request.max_pixels) {
    throw ApiError(400,
                   "min_pixels: " + std::to_string(*request.min_pixels) + " is more than max_pixels " +
                       std::to_string(*request.max_pixels),
                   "min_pixels");
  }
}

// parse_json_bounded's InvalidInput as the client should read it: "... is not valid JSON: <why>".
ApiError body_error(const std::string& message) {
  std::string detail = message;
  const std::string prefix = std::string(kBodySource) + ": ";
  if (detail.starts_with(prefix)) detail.erase(0, prefix.size());
  if (detail.find("nested deeper") != std::string::npos) {
    return ApiError(400, std::string(kBodySource) + " nests JSON deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  // The parser's message quotes what it last read: raw, possibly invalid UTF-8, and possibly long.
  constexpr std::string_view kWrapper = "not valid JSON (";
  if (detail.starts_with(kWrapper) && detail.ends_with(")")) {
    detail = detail.substr(kWrapper.size(), detail.size() - kWrapper.size() - 1);
  }
  if (const std::size_t tag_end = detail.find("] "); detail.starts_with("[json.exception.") && tag_end != std::string::npos) {
    detail.erase(0, tag_end + 2);  // nlohmann's "[json.exception.parse_error.101] "
  }
  return ApiError(400, std::string(kBodySource) + " is not valid JSON: " + message_excerpt(detail, 240));
}

}  // namespace

ChatRequest parse_chat_request(std::string_view body, const RequestLimits& limits) {
  json document;
  try {
    document = parse_ordered_json_bounded(body, std::string(kBodySource));
  } catch (const InvalidInput& error) {
    throw body_error(error.what());
  }
  if (!document.is_object()) {
    throw ApiError(400, std::string(kBodySource) + " must be a JSON object, got " + json_type_name(document));
  }
  try {
    const Field root(document, "");
    ChatRequest request;
    request.messages = parse_messages(root, limits);
    parse_parameters(root, limits, request);
    return request;
  } catch (const json::exception& error) {
    // The checks above test every type before reading it; this is only a safety net.
    throw ApiError(400, std::string(kBodySource) + " could not be read: " + message_excerpt(error.what(), 240));
  }
}

}  // namespace q3vl::server
