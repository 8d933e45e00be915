#pragma once
// Python's json.dumps, which the chat template's tojson filter is: tool definitions and object
// tool-call arguments are rendered with it.
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace q3vl {

// The template's tojson filter as transformers defines it: Python json.dumps(value,
// ensure_ascii=False) - ", " and ": " separators, keys in stored order, floats as Python repr.
std::string dump_json_like_python(const nlohmann::ordered_json& value);

// Python's repr(float) (also what json.dumps writes for a float; NaN and infinities as json.dumps).
std::string python_float_repr(double value);

// A string as json.dumps(ensure_ascii=False) quotes it.
std::string python_json_string(const std::string& text);

}  // namespace q3vl
