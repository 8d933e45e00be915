#include "text/jinja/value.h"

#include <algorithm>
#include <limits>

#include <nlohmann/json.hpp>

#include "text/python_json.h"

namespace q3vl::jinja {

Value Value::undefined(std::string what) {
  Value v;
  v.kind = Kind::Undefined;
  v.text = std::move(what);
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::None;
  return v;
}
Value Value::from_bool(bool value) {
  Value v;
  v.kind = Kind::Bool;
  v.boolean = value;
  return v;
}
Value Value::from_int(std::int64_t value) {
  Value v;
  v.kind = Kind::Int;
  v.integer = value;
  return v;
}
Value Value::from_float(double value) {
  Value v;
  v.kind = Kind::Float;
  v.number = value;
  return v;
}
Value Value::from_string(std::string value) {
  Value v;
  v.kind = Kind::String;
  v.text = std::move(value);
  return v;
}
Value Value::from_list(List items, bool tuple) {
  Value v;
  v.kind = tuple ? Kind::Tuple : Kind::ListKind;
  v.list = std::make_shared<List>(std::move(items));
  return v;
}
Value Value::from_dict(Dict items) {
  Value v;
  v.kind = Kind::DictKind;
  v.dict = std::make_shared<Dict>(std::move(items));
  return v;
}
Value Value::callable(std::string name, Function function) {
  Value v;
  v.kind = Kind::Callable;
  v.text = std::move(name);
  v.function = std::make_shared<Function>(std::move(function));
  return v;
}

double Value::as_double() const {
  switch (kind) {
    case Kind::Int:
      if (big_unsigned) return static_cast<double>(unsigned_integer);
      return static_cast<double>(integer);
    case Kind::Float: return number;
    case Kind::Bool: return boolean ? 1.0 : 0.0;
    default: throw RenderError(std::string("expected a number, got ") + type_name(*this));
  }
}

std::int64_t Value::as_integer() const {
  if (kind == Kind::Int) {
    if (big_unsigned) throw RenderError("integer above 2^63 - 1 cannot be computed with");
    return integer;
  }
  if (kind == Kind::Bool) return boolean ? 1 : 0;
  throw RenderError(std::string("expected an integer, got ") + type_name(*this));
}

const Value* Value::find(const std::string& key) const {
  if (!dict) return nullptr;
  for (const auto& [name, value] : *dict) {
    if (name == key) return &value;
  }
  return nullptr;
}

void refuse_markup(const Value& value, const char* operation) {
  if (value.markup) {
    throw RenderError(std::string("unsupported: ") + operation +
                      " with a safe or escaped (Markup) string, which would escape the other operands");
  }
}

const char* type_name(const Value& value) {
  switch (value.kind) {
    case Value::Kind::Undefined: return "Undefined";
    case Value::Kind::None: return "NoneType";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::ListKind: return "list";
    case Value::Kind::Tuple: return "tuple";
    case Value::Kind::DictKind: return "dict";
    case Value::Kind::Namespace: return "Namespace";
    case Value::Kind::Callable: return "function";
  }
  return "object";
}

bool truthy(const Value& value) {
  switch (value.kind) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return false;
    case Value::Kind::Bool: return value.boolean;
    case Value::Kind::Int: return value.big_unsigned || value.integer != 0;
    case Value::Kind::Float: return value.number != 0.0;
    case Value::Kind::String: return !value.text.empty();
    case Value::Kind::ListKind:
    case Value::Kind::Tuple: return !value.list->empty();
    case Value::Kind::DictKind: return !value.dict->empty();
    case Value::Kind::Namespace:
    case Value::Kind::Callable: return true;
  }
  return false;
}

bool equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind != Value::Kind::Float && b.kind != Value::Kind::Float) {
      if (a.big_unsigned || b.big_unsigned) {
        return a.big_unsigned && b.big_unsigned && a.unsigned_integer == b.unsigned_integer;
      }
      return a.as_integer() == b.as_integer();
    }
    return a.as_double() == b.as_double();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return true;
    case Value::Kind::String: return a.text == b.text;
    case Value::Kind::ListKind:
    case Value::Kind::Tuple:
      if (a.list->size() != b.list->size()) return false;
      for (std::size_t i = 0; i < a.list->size(); ++i) {
        if (!equal((*a.list)[i], (*b.list)[i])) return false;
      }
      return true;
    case Value::Kind::DictKind:
      if (a.dict->size() != b.dict->size()) return false;
      for (const auto& [key, value] : *a.dict) {
        const Value* other = b.find(key);
        if (!other || !equal(value, *other)) return false;
      }
      return true;
    case Value::Kind::Namespace: return a.dict == b.dict;
    case Value::Kind::Callable: return a.function == b.function;
    default: return false;
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind != Value::Kind::Float && b.kind != Value::Kind::Float) {
      const std::int64_t x = a.as_integer(), y = b.as_integer();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    const double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.text.compare(b.text);  // UTF-8 byte order is code point order
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_sequence() && a.kind == b.kind) {
    const std::size_t n = std::min(a.list->size(), b.list->size());
    for (std::size_t i = 0; i < n; ++i) {
      if (!equal((*a.list)[i], (*b.list)[i])) return compare((*a.list)[i], (*b.list)[i]);
    }
    return a.list->size() < b.list->size() ? -1 : (a.list->size() > b.list->size() ? 1 : 0);
  }
  throw RenderError(std::string("'<' not supported between instances of '") + type_name(a) + "' and '" +
                    type_name(b) + "'");
}

namespace {

std::uint32_t decode_utf8(const std::string& c) {
  const auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(c[i])); };
  if (c.size() == 2) return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
  if (c.size() == 3) return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  if (c.size() == 4) return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  return b(0);
}

// Code points Python's repr() escapes (str.isprintable() false): controls, format characters,
// separators other than the space, private use (unassigned code points are not known here).
bool non_printable(std::uint32_t cp) {
  return (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) ||
         (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || cp == 0xFEFF ||
         (cp >= 0xFFF9 && cp <= 0xFFFB) || (cp >= 0xE000 && cp <= 0xF8FF) || (cp >= 0xD800 && cp <= 0xDFFF);
}

void append_hex_escape(std::string& out, std::uint32_t cp) {
  constexpr char kHex[] = "0123456789abcdef";
  const int digits = cp < 0x100 ? 2 : (cp < 0x10000 ? 4 : 8);
  out += digits == 2 ? "\\x" : (digits == 4 ? "\\u" : "\\U");
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += kHex[(cp >> shift) & 0xF];
}

std::string repr_string(const std::string& text) {
  const bool has_single = text.find('\'') != std::string::npos;
  const bool has_double = text.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (const std::string& point : code_points(text)) {
    if (point.size() > 1) {
      const std::uint32_t cp = decode_utf8(point);
      if (non_printable(cp)) append_hex_escape(out, cp);
      else out += point;
      continue;
    }
    const char c = point[0];
    const auto byte = static_cast<unsigned char>(c);
    if (c == quote || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      append_hex_escape(out, byte);
    } else {
      out += c;
    }
  }
  out += quote;
  return out;
}

std::string integer_text(const Value& value) {
  return value.big_unsigned ? std::to_string(value.unsigned_integer) : std::to_string(value.integer);
}

}  // namespace

std::string to_str(const Value& value) {
  switch (value.kind) {
    case Value::Kind::Undefined: return "";
    case Value::Kind::String: return value.text;
    default: return to_repr(value);
  }
}

std::string to_repr(const Value& value) {
  switch (value.kind) {
    case Value::Kind::Undefined: return "Undefined";
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return value.boolean ? "True" : "False";
    case Value::Kind::Int: return integer_text(value);
    case Value::Kind::Float: {
      if (value.number != value.number) return "nan";
      if (value.number == std::numeric_limits<double>::infinity()) return "inf";
      if (value.number == -std::numeric_limits<double>::infinity()) return "-inf";
      return python_float_repr(value.number);
    }
    case Value::Kind::String: return repr_string(value.text);
    case Value::Kind::ListKind:
    case Value::Kind::Tuple: {
      const bool tuple = value.kind == Value::Kind::Tuple;
      std::string out = tuple ? "(" : "[";
      for (std::size_t i = 0; i < value.list->size(); ++i) {
        if (i) out += ", ";
        out += to_repr((*value.list)[i]);
      }
      if (tuple && value.list->size() == 1) out += ',';
      out += tuple ? ")" : "]";
      return out;
    }
    case Value::Kind::DictKind: {
      std::string out = "{";
      bool first = true;
      for (const auto& [key, item] : *value.dict) {
        if (!first) out += ", ";
        first = false;
        out += repr_string(key) + ": " + to_repr(item);
      }
      return out + "}";
    }
    case Value::Kind::Namespace: throw RenderError("printing a namespace() is not supported");
    case Value::Kind::Callable: throw RenderError("printing a function ('" + value.text + "') is not supported");
  }
  return "";
}

std::vector<std::string> code_points(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t n = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 1;
    n = std::min(n, text.size() - i);
    out.push_back(text.substr(i, n));
    i += n;
  }
  return out;
}

List iterate(const Value& value) {
  switch (value.kind) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::ListKind:
    case Value::Kind::Tuple: return *value.list;
    case Value::Kind::String: {
      List out;
      for (auto& c : code_points(value.text)) out.push_back(Value::from_string(std::move(c)));
      return out;
    }
    case Value::Kind::DictKind: {
      List out;
      for (const auto& item : *value.dict) out.push_back(Value::from_string(item.first));
      return out;
    }
    default: throw RenderError(std::string("'") + type_name(value) + "' object is not iterable");
  }
}

std::size_t length(const Value& value) {
  switch (value.kind) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::String: return code_points(value.text).size();
    case Value::Kind::ListKind:
    case Value::Kind::Tuple: return value.list->size();
    case Value::Kind::DictKind: return value.dict->size();
    default: throw RenderError(std::string("object of type '") + type_name(value) + "' has no len()");
  }
}

Value from_json(const nlohmann::ordered_json& json) {
  using T = nlohmann::ordered_json::value_t;
  switch (json.type()) {
    case T::null: return Value::none();
    case T::boolean: return Value::from_bool(json.get<bool>());
    case T::number_integer: return Value::from_int(json.get<std::int64_t>());
    case T::number_unsigned: {
      const auto u = json.get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return Value::from_int(static_cast<std::int64_t>(u));
      }
      Value v = Value::from_int(0);
      v.big_unsigned = true;
      v.unsigned_integer = u;
      return v;
    }
    case T::number_float: return Value::from_float(json.get<double>());
    case T::string: return Value::from_string(json.get<std::string>());
    case T::array: {
      List items;
      for (const auto& element : json) items.push_back(from_json(element));
      return Value::from_list(std::move(items));
    }
    case T::object: {
      Dict items;
      for (const auto& [key, element] : json.items()) items.emplace_back(key, from_json(element));
      return Value::from_dict(std::move(items));
    }
    default: throw RenderError("binary JSON values cannot reach a chat template");
  }
}

namespace {

void append_json(std::string& out, const Value& value, int indent, bool sort_keys, int depth) {
  const auto newline = [&](int level) {
    out += '\n';
    out.append(static_cast<std::size_t>(indent * level), ' ');
  };
  const char* item_separator = indent >= 0 ? "," : ", ";
  switch (value.kind) {
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += value.boolean ? "true" : "false"; return;
    case Value::Kind::Int: out += integer_text(value); return;
    case Value::Kind::Float: {
      const double x = value.number;
      if (x != x) out += "NaN";
      else if (x == std::numeric_limits<double>::infinity()) out += "Infinity";
      else if (x == -std::numeric_limits<double>::infinity()) out += "-Infinity";
      else out += python_float_repr(x);
      return;
    }
    case Value::Kind::String: out += python_json_string(value.text); return;
    case Value::Kind::ListKind:
    case Value::Kind::Tuple: {
      if (value.list->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (std::size_t i = 0; i < value.list->size(); ++i) {
        if (i) out += item_separator;
        if (indent >= 0) newline(depth + 1);
        append_json(out, (*value.list)[i], indent, sort_keys, depth + 1);
      }
      if (indent >= 0) newline(depth);
      out += ']';
      return;
    }
    case Value::Kind::DictKind: {
      if (value.dict->empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& item : *value.dict) items.push_back(&item);
      if (sort_keys) {
        std::stable_sort(items.begin(), items.end(), [](auto* x, auto* y) { return x->first < y->first; });
      }
      out += '{';
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_separator;
        if (indent >= 0) newline(depth + 1);
        out += python_json_string(items[i]->first);
        out += ": ";
        append_json(out, items[i]->second, indent, sort_keys, depth + 1);
      }
      if (indent >= 0) newline(depth);
      out += '}';
      return;
    }
    default:
      throw RenderError(std::string("Object of type ") + type_name(value) + " is not JSON serializable");
  }
}

}  // namespace

std::string to_json_text(const Value& value, int indent, bool sort_keys) {
  std::string out;
  append_json(out, value, indent, sort_keys, 0);
  return out;
}

}  // namespace q3vl::jinja
