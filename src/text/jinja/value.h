#pragma once
// Values of the chat-template interpreter, with Python's semantics where templates see them:
// truthiness, equality, ordering, str() and repr() (None, True, 1.0, ['a', 1], {'k': None}).
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace q3vl::jinja {

// An error while rendering, without the template line; the interpreter adds the line and turns it
// into q3vl::InvalidInput.
class RenderError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, string keys
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using Function = std::function<Value(CallArgs&)>;

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, ListKind, Tuple, DictKind, Namespace, Callable };
  Kind kind = Kind::Undefined;
  bool boolean = false;
  std::int64_t integer = 0;
  bool big_unsigned = false;  // an integer above INT64_MAX from JSON: printable, not computable
  // A String from safe or escape: jinja2's Markup, which escapes what it is joined with. Printed
  // as is; joining it with other text is refused (see refuse_markup).
  bool markup = false;
  std::uint64_t unsigned_integer = 0;
  double number = 0;
  std::string text;  // String; Undefined: what was undefined ("'x' is undefined"); Callable: name
  std::shared_ptr<List> list;    // List, Tuple
  std::shared_ptr<Dict> dict;    // Dict, Namespace (shared: namespaces are mutable)
  std::shared_ptr<Function> function;

  static Value undefined(std::string what = "value is undefined");
  static Value none();
  static Value from_bool(bool value);
  static Value from_int(std::int64_t value);
  static Value from_float(double value);
  static Value from_string(std::string value);
  static Value from_list(List items, bool tuple = false);
  static Value from_dict(Dict items);
  static Value callable(std::string name, Function function);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_sequence() const { return kind == Kind::ListKind || kind == Kind::Tuple; }
  bool is_mapping() const { return kind == Kind::DictKind; }

  double as_double() const;         // Int, Float, Bool
  std::int64_t as_integer() const;  // Int, Bool
  const Value* find(const std::string& key) const;  // Dict, Namespace
};

const char* type_name(const Value& value);
// Throws RenderError where `value` is Markup: `operation` would escape the other operands.
void refuse_markup(const Value& value, const char* operation);  // Python's name: 'str', 'int', 'dict', 'list', ...
bool truthy(const Value& value);
bool equal(const Value& a, const Value& b);
int compare(const Value& a, const Value& b);  // <0, 0, >0; RenderError where Python raises TypeError
std::string to_str(const Value& value);        // Python str() (what {{ }} prints); Undefined -> ""
std::string to_repr(const Value& value);       // Python repr()
// Python's iter(): list/tuple items, a string's characters, a dict's keys; Undefined -> empty.
List iterate(const Value& value);
std::size_t length(const Value& value);

// UTF-8 code points of a string (Python indexes strings by code point).
std::vector<std::string> code_points(const std::string& text);

Value from_json(const nlohmann::ordered_json& json);
// json.dumps(value, ensure_ascii=False, indent=indent (<0: none), sort_keys=sort_keys).
std::string to_json_text(const Value& value, int indent, bool sort_keys);

}  // namespace q3vl::jinja
