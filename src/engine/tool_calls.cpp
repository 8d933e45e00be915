#include "engine/tool_calls.h"

#include <cstdio>
#include <random>

#include "q3vl/error.h"
#include "text/python_json.h"
#include "util/json_fields.h"

namespace q3vl {

std::vector<ToolDefinition> read_tool_definitions(std::span<const std::string> tools, const ToolChoice& choice) {
  std::vector<ToolDefinition> out;
  for (std::size_t i = 0; i < tools.size(); ++i) {
    const std::string where = "tools[" + std::to_string(i) + "]";
    const nlohmann::ordered_json tool = parse_ordered_json_bounded(tools[i], where);
    if (!tool.is_object()) throw InvalidInput(where + ": expected an object");
    const auto type = tool.find("type");
    if (type != tool.end() && *type != "function") {
      throw InvalidInput(where + ".type: only \"function\" tools are supported, got " + type->dump());
    }
    // OpenAI's {"type": "function", "function": {...}}, or the function itself as HF's examples give it.
    const nlohmann::ordered_json* function = &tool;
    if (const auto wrapped = tool.find("function"); wrapped != tool.end()) {
      if (!wrapped->is_object()) throw InvalidInput(where + ".function: expected an object");
      function = &*wrapped;
    } else if (type != tool.end() || !tool.contains("name")) {
      throw InvalidInput(where + ".function: expected an object");
    }
    const std::string path = function == &tool ? where : where + ".function";
    const auto name = function->find("name");
    if (name == function->end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
      throw InvalidInput(path + ".name: expected a non-empty string");
    }
    ToolDefinition definition{name->get<std::string>(), nlohmann::ordered_json{{"type", "object"}}, dump_json_like_python(tool)};
    const auto parameters = function->find("parameters");
    if (parameters != function->end() && !parameters->is_null()) {
      if (!parameters->is_object()) throw InvalidInput(path + ".parameters: expected a JSON schema object");
      definition.parameters = *parameters;
    }
    out.push_back(std::move(definition));
  }
  if (choice.mode == ToolChoice::Mode::Required && out.empty()) throw InvalidInput("tool_choice: \"required\" needs tools");
  if (choice.mode == ToolChoice::Mode::Function) {
    bool found = false;
    for (const ToolDefinition& tool : out) found = found || tool.name == choice.function;
    if (!found) throw InvalidInput("tool_choice: no tool named \"" + choice.function + "\" is offered");
  }
  return out;
}

nlohmann::ordered_json tool_call_schema(const std::vector<ToolDefinition>& tools, const ToolChoice& choice) {
  nlohmann::ordered_json alternatives = nlohmann::ordered_json::array();
  for (const ToolDefinition& tool : tools) {
    if (choice.mode == ToolChoice::Mode::Function && tool.name != choice.function) continue;
    nlohmann::ordered_json call = {{"type", "object"},
                                   {"properties", {{"name", {{"const", tool.name}}}, {"arguments", tool.parameters}}},
                                   {"required", {"name", "arguments"}}};
    alternatives.push_back(std::move(call));
  }
  if (alternatives.size() == 1) return alternatives[0];
  return {{"anyOf", std::move(alternatives)}};
}

std::string new_tool_call_id() {
  std::random_device entropy;
  std::mt19937_64 bits((static_cast<std::uint64_t>(entropy()) << 32) ^ entropy());
  char text[32];
  std::snprintf(text, sizeof text, "call_%016llx%08llx", static_cast<unsigned long long>(bits()),
                static_cast<unsigned long long>(bits() & 0xffffffffu));
  return text;
}

}  // namespace q3vl
