#pragma once
// The tools a request offers, read once: each definition's function name and its parameters
// schema, for the template (as given) and for tool_choice "required" or a named function, which
// hold the reply to one call in Qwen's format, `{"name": ..., "arguments": {...}}` between
// `<tool_call>` tags, through the same JSON-schema constraint as response_format.
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "q3vl/conversation.h"
#include "text/reply_parser.h"

namespace q3vl {

struct ToolDefinition {
  std::string name;
  nlohmann::ordered_json parameters;  // the function's JSON schema ({"type": "object"} when it has none)
  std::string as_template_sees_it;    // the whole definition as the template's tojson writes it
};

// `tools`: JSON text of OpenAI tool definitions ({"type": "function", "function": {"name", ...}}).
// Throws InvalidInput naming `tools[i]` for one that is not JSON, not a function, or has no name,
// and naming tool_choice for a function none of them defines.
std::vector<ToolDefinition> read_tool_definitions(std::span<const std::string> tools, const ToolChoice& choice);

// The schema of the JSON between the tags for Required (any of the tools) or Function (that one):
// {"name": <the name>, "arguments": <its parameters>}.
nlohmann::ordered_json tool_call_schema(const std::vector<ToolDefinition>& tools, const ToolChoice& choice);

// The forced text around a constrained call: the tags on lines of their own, as the templates write them.
inline std::string tool_call_opening() { return std::string(kToolCallOpen) + "\n"; }
inline std::string tool_call_closing() { return "\n" + std::string(kToolCallClose); }

// "call_" and 24 random hex digits, as OpenAI's ids look.
std::string new_tool_call_id();

}  // namespace q3vl
