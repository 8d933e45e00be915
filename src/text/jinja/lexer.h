#pragma once
// Splits a chat template into tokens as jinja2 does with Hugging Face's settings (trim_blocks,
// lstrip_blocks): text, {{ }}, {% %} (comments {# #} dropped), whitespace control with - and +.
#include <string>
#include <string_view>
#include <vector>

namespace q3vl::jinja {

struct Token {
  enum class Type { Text, VariableBegin, VariableEnd, BlockBegin, BlockEnd, Name, Integer, Float, String, Operator, End };
  Type type;
  std::string text;  // Text/String: the (unescaped) text; Name, Operator, numbers: as written
  int line;
};

// Throws q3vl::InvalidInput naming the line ("chat template line 3: unterminated string").
std::vector<Token> tokenize(std::string_view source);

}  // namespace q3vl::jinja
