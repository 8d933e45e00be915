#include "text/python_json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string_view>
#include <system_error>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"

namespace q3vl {
namespace {

using OrderedJson = nlohmann::ordered_json;

void append_python_string(std::string& out, const std::string& text) {
  out += '"';
  for (const char character : text) {
    const auto byte = static_cast<unsigned char>(character);
    switch (character) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (byte < 0x20) {
          constexpr std::string_view kHex = "0123456789abcdef";
          out += "\\u00";
          out += kHex[byte >> 4];
          out += kHex[byte & 0xF];
        } else {
          out += character;  // ensure_ascii=False: UTF-8 passes through
        }
    }
  }
  out += '"';
}

// Python's repr(float): the shortest round-trip digits, positional when the decimal point lands
// within (-4, 16] digits, else d.ddde±XX with at least two exponent digits.
void append_python_float(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value < 0 ? "-Infinity" : "Infinity";
    return;
  }
  char buffer[64];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
  if (error != std::errc{}) throw InvalidInput("cannot format the number in a tool call or definition");
  std::string_view scientific(buffer, static_cast<std::size_t>(end - buffer));
  if (scientific.front() == '-') {
    out += '-';
    scientific.remove_prefix(1);
  }
  const std::size_t exponent_mark = scientific.find('e');
  std::string digits;
  for (const char character : scientific.substr(0, exponent_mark)) {
    if (character != '.') digits += character;
  }
  const int exponent = std::atoi(std::string(scientific.substr(exponent_mark + 1)).c_str());
  const int decimal_point = exponent + 1;  // digits before the point in positional notation
  const int digit_count = static_cast<int>(digits.size());
  if (decimal_point <= -4 || decimal_point > 16) {
    out += digits.front();
    if (digit_count > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += exponent < 0 ? "e-" : "e+";
    const int magnitude = std::abs(exponent);
    if (magnitude < 10) out += '0';
    out += std::to_string(magnitude);
  } else if (decimal_point <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-decimal_point), '0');
    out += digits;
  } else if (decimal_point < digit_count) {
    out.append(digits, 0, static_cast<std::size_t>(decimal_point));
    out += '.';
    out.append(digits, static_cast<std::size_t>(decimal_point));
  } else {
    out += digits;
    out.append(static_cast<std::size_t>(decimal_point - digit_count), '0');
    out += ".0";
  }
}

void append_python_json(std::string& out, const OrderedJson& value) {
  switch (value.type()) {
    case OrderedJson::value_t::null: out += "null"; break;
    case OrderedJson::value_t::boolean: out += value.get<bool>() ? "true" : "false"; break;
    case OrderedJson::value_t::number_integer: out += std::to_string(value.get<std::int64_t>()); break;
    case OrderedJson::value_t::number_unsigned: out += std::to_string(value.get<std::uint64_t>()); break;
    case OrderedJson::value_t::number_float: append_python_float(out, value.get<double>()); break;
    case OrderedJson::value_t::string: append_python_string(out, value.get_ref<const std::string&>()); break;
    case OrderedJson::value_t::array: {
      out += '[';
      bool first = true;
      for (const OrderedJson& element : value) {
        if (!first) out += ", ";
        first = false;
        append_python_json(out, element);
      }
      out += ']';
      break;
    }
    case OrderedJson::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, element] : value.items()) {
        if (!first) out += ", ";
        first = false;
        append_python_string(out, key);
        out += ": ";
        append_python_json(out, element);
      }
      out += '}';
      break;
    }
    case OrderedJson::value_t::binary:
    case OrderedJson::value_t::discarded:
      throw InvalidInput("binary or discarded JSON value cannot appear in a chat");
  }
}

}  // namespace

std::string python_float_repr(double value) {
  std::string out;
  append_python_float(out, value);
  return out;
}

std::string python_json_string(const std::string& text) {
  std::string out;
  append_python_string(out, text);
  return out;
}

std::string dump_json_like_python(const nlohmann::ordered_json& value) {
  std::string out;
  append_python_json(out, value);
  return out;
}

}  // namespace q3vl
