#pragma once
// Parses a chat template (jinja2's grammar and operator precedence) into a Program.
#include <string_view>

#include "text/jinja/ast.h"

namespace q3vl::jinja {

// Throws q3vl::InvalidInput naming the line and the construct ("chat template line 4:
// unsupported tag 'include'").
Program parse(std::string_view source);

}  // namespace q3vl::jinja
