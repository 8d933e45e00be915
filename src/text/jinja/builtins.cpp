#include "text/jinja/builtins.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <span>

#include "q3vl/error.h"

namespace q3vl::jinja {

const Value* argument(const CallArgs& args, std::size_t index, const char* name) {
  for (const auto& [key, value] : args.keyword) {
    if (key == name) return &value;
  }
  return index < args.positional.size() ? &args.positional[index] : nullptr;
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::uint32_t decode_code_point(const std::string& c) {
  const auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(c[i])); };
  if (c.size() == 1) return b(0);
  if (c.size() == 2) return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
  if (c.size() == 3) return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
}

// Python's str.isspace() for one code point (what strip() and split() without arguments drop).
bool is_python_space(const std::string& c) {
  const std::uint32_t cp = decode_code_point(c);
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Case mapping is ASCII only: other text must be in scripts without case (CJK, kana, Hangul,
// Arabic, Hebrew, Indic, Thai, punctuation, symbols, emoji), else the result would differ from
// Python's and the template is refused instead.
void require_caseless_beyond_ascii(const std::string& s, const char* what) {
  for (const std::string& c : code_points(s)) {
    if (c.size() == 1) continue;
    const std::uint32_t cp = decode_code_point(c);
    const bool caseless = (cp >= 0x0590 && cp <= 0x0DFF) || (cp >= 0x0E00 && cp <= 0x0E7F) ||
                          (cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x9FFF) ||
                          (cp >= 0xAC00 && cp <= 0xD7AF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
                          (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0x1F000 && cp <= 0x1FAFF) || cp == 0xA0;
    if (!caseless) throw RenderError(std::string("unsupported: ") + what + " of text with non-ASCII letters");
  }
}

std::string ascii_lower(std::string s) {
  require_caseless_beyond_ascii(s, "lower-casing");
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string ascii_upper(std::string s) {
  require_caseless_beyond_ascii(s, "upper-casing");
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) >= 0x80; }

std::string strip(const std::string& s, const Value* chars, bool left, bool right) {
  const bool whitespace = !chars || chars->is_none();
  if (!whitespace && !chars->is_string()) throw RenderError("strip arg must be None or str");
  const std::vector<std::string> drop_set = whitespace ? std::vector<std::string>{} : code_points(chars->text);
  const auto drop = [&](const std::string& c) {
    if (whitespace) return is_python_space(c);
    return std::find(drop_set.begin(), drop_set.end(), c) != drop_set.end();
  };
  const std::vector<std::string> cps = code_points(s);
  std::size_t begin = 0, end = cps.size();
  if (left) {
    while (begin < end && drop(cps[begin])) ++begin;
  }
  if (right) {
    while (end > begin && drop(cps[end - 1])) --end;
  }
  std::string out;
  for (std::size_t i = begin; i < end; ++i) out += cps[i];
  return out;
}

const std::string& need_string(const Value& v, const char* what) {
  if (!v.is_string()) throw RenderError(std::string(what) + " expects a string, got " + type_name(v));
  return v.text;
}

Value split(const std::string& s, const Value* sep, const Value* maxsplit_value) {
  std::int64_t maxsplit = maxsplit_value ? maxsplit_value->as_integer() : -1;
  List out;
  if (!sep || sep->is_none()) {
    const std::vector<std::string> cps = code_points(s);
    std::size_t i = 0;
    while (true) {
      while (i < cps.size() && is_python_space(cps[i])) ++i;
      if (i >= cps.size()) break;
      std::string word;
      if (maxsplit == 0) {  // the rest as is (Python does not strip its end)
        for (std::size_t k = i; k < cps.size(); ++k) word += cps[k];
        out.push_back(Value::from_string(std::move(word)));
        break;
      }
      while (i < cps.size() && !is_python_space(cps[i])) word += cps[i++];
      out.push_back(Value::from_string(std::move(word)));
      --maxsplit;
    }
    return Value::from_list(std::move(out));
  }
  const std::string& separator = need_string(*sep, "split");
  if (separator.empty()) throw RenderError("empty separator");
  std::size_t start = 0;
  while (maxsplit != 0) {
    const std::size_t at = s.find(separator, start);
    if (at == std::string::npos) break;
    out.push_back(Value::from_string(s.substr(start, at - start)));
    start = at + separator.size();
    --maxsplit;
  }
  out.push_back(Value::from_string(s.substr(start)));
  return Value::from_list(std::move(out));
}

std::string replace(const std::string& s, const std::string& old, const std::string& with, std::int64_t count) {
  std::string out;
  std::size_t start = 0;
  if (old.empty()) throw RenderError("unsupported: replace with an empty old string");
  while (count != 0) {
    const std::size_t at = s.find(old, start);
    if (at == std::string::npos) break;
    out.append(s, start, at - start);
    out += with;
    start = at + old.size();
    --count;
  }
  out.append(s, start);
  return out;
}

// Python's str.title(): upper after a non-letter, lower after a letter (ASCII letters).
std::string python_title(const std::string& s) {
  require_caseless_beyond_ascii(s, "title-casing");
  std::string out;
  bool previous_letter = false;
  for (const char c : s) {
    out += previous_letter ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                           : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    previous_letter = is_alpha(c);
  }
  return out;
}

// Jinja's title filter: words split at whitespace, -, (, {, [, <.
std::string jinja_title(const std::string& s) {
  require_caseless_beyond_ascii(s, "title-casing");
  std::string out;
  bool word_start = true;
  for (const char c : s) {
    const bool separator = is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (separator) out += c;
    else out += word_start ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
                           : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    word_start = separator;
  }
  return out;
}

std::string capitalize(const std::string& s) {
  std::string out = ascii_lower(s);
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

bool starts_or_ends(const std::string& s, const Value& prefix, bool starts) {
  const auto check = [&](const Value& p) {
    const std::string& t = need_string(p, starts ? "startswith" : "endswith");
    if (t.size() > s.size()) return false;
    return starts ? s.compare(0, t.size(), t) == 0 : s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  if (prefix.kind == Value::Kind::Tuple) {
    return std::any_of(prefix.list->begin(), prefix.list->end(), check);
  }
  return check(prefix);
}

std::int64_t count_of(const std::string& s, const std::string& sub) {
  if (sub.empty()) return static_cast<std::int64_t>(code_points(s).size()) + 1;
  std::int64_t n = 0;
  for (std::size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
  return n;
}

std::string format_method(const std::string& format, const CallArgs& args) {
  std::string out;
  std::size_t next = 0;
  for (std::size_t i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c == '{' && i + 1 < format.size() && format[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '}' && i + 1 < format.size() && format[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{') {
      const std::size_t close = format.find('}', i);
      if (close == std::string::npos) throw RenderError("single '{' encountered in format string");
      const std::string field = format.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!.[") != std::string::npos) {
        throw RenderError("unsupported: format spec or conversion in str.format field '{" + field + "}'");
      }
      const Value* v = nullptr;
      if (field.empty()) v = next < args.positional.size() ? &args.positional[next++] : nullptr;
      else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
        const auto k = static_cast<std::size_t>(std::stoul(field));
        v = k < args.positional.size() ? &args.positional[k] : nullptr;
      } else {
        v = argument(args, static_cast<std::size_t>(-1), field.c_str());
      }
      if (!v) throw RenderError("str.format: missing argument for '{" + field + "}'");
      out += to_str(*v);
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

bool listed(std::span<const char* const> names, const std::string& name) {
  return std::find_if(names.begin(), names.end(), [&](const char* n) { return name == n; }) != names.end();
}

// The public attributes of Python's str, list and tuple. jinja2 looks `x.name` (and `x['name']`)
// up with getattr, so a name the Python type lacks is undefined: templates rely on it (Qwen's
// `item.type == 'image'` where a content item is a plain string). A name the type has but we do not
// implement, or a private one (the sandbox refuses those), must stay an error naming it instead of
// silently turning undefined.
constexpr const char* kPythonStrAttributes[] = {
    "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
    "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
    "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans",
    "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit",
    "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill"};
constexpr const char* kPythonListAttributes[] = {"append", "clear", "copy", "count",   "extend", "index",
                                                 "insert", "pop",   "remove", "reverse", "sort"};
constexpr const char* kPythonTupleAttributes[] = {"count", "index"};

bool python_lacks_attribute(std::span<const char* const> attributes, const std::string& name) {
  return !name.starts_with('_') && !listed(attributes, name);
}

Value string_method(const std::string& s, const std::string& name) {
  static const char* const kMethods[] = {"startswith", "endswith", "strip", "lstrip", "rstrip", "split", "upper",
                                         "lower", "title", "capitalize", "replace", "find", "count", "format",
                                         "join", "rsplit", "isdigit", "isspace", "isalpha"};
  if (!listed(kMethods, name)) {
    if (python_lacks_attribute(kPythonStrAttributes, name)) {
      return Value::undefined("'str object' has no attribute '" + name + "'");
    }
    throw RenderError("unsupported string method or attribute '" + name + "'");
  }
  return Value::callable("str." + name, [s, name](CallArgs& args) -> Value {
    const Value* a0 = argument(args, 0, "__0");
    const Value* a1 = argument(args, 1, "__1");
    if (name == "startswith" || name == "endswith") {
      if (!a0) throw RenderError(name + "() takes at least 1 argument");
      return Value::from_bool(starts_or_ends(s, *a0, name == "startswith"));
    }
    if (name == "strip") return Value::from_string(strip(s, a0, true, true));
    if (name == "lstrip") return Value::from_string(strip(s, a0, true, false));
    if (name == "rstrip") return Value::from_string(strip(s, a0, false, true));
    if (name == "split") return split(s, argument(args, 0, "sep"), argument(args, 1, "maxsplit"));
    if (name == "rsplit") {
      const Value* maxsplit = argument(args, 1, "maxsplit");
      if (maxsplit && maxsplit->as_integer() >= 0) throw RenderError("unsupported: rsplit with maxsplit");
      return split(s, argument(args, 0, "sep"), nullptr);
    }
    if (name == "upper") return Value::from_string(ascii_upper(s));
    if (name == "lower") return Value::from_string(ascii_lower(s));
    if (name == "title") return Value::from_string(python_title(s));
    if (name == "capitalize") return Value::from_string(capitalize(s));
    if (name == "replace") {
      if (!a0 || !a1) throw RenderError("replace() takes at least 2 arguments");
      const Value* count = argument(args, 2, "count");
      return Value::from_string(replace(s, need_string(*a0, "replace"), need_string(*a1, "replace"),
                                        count ? count->as_integer() : -1));
    }
    if (name == "find") {
      if (!a0) throw RenderError("find() takes at least 1 argument");
      const std::size_t at = s.find(need_string(*a0, "find"));
      if (at == std::string::npos) return Value::from_int(-1);
      return Value::from_int(static_cast<std::int64_t>(code_points(s.substr(0, at)).size()));
    }
    if (name == "count") {
      if (!a0) throw RenderError("count() takes at least 1 argument");
      return Value::from_int(count_of(s, need_string(*a0, "count")));
    }
    if (name == "format") return Value::from_string(format_method(s, args));
    if (name == "join") {
      if (!a0) throw RenderError("join() takes exactly one argument");
      std::string out;
      bool first = true;
      for (const Value& v : iterate(*a0)) {
        refuse_markup(v, "str.join");
        if (!first) out += s;
        first = false;
        out += need_string(v, "join");
      }
      return Value::from_string(std::move(out));
    }
    const auto all = [&](auto predicate) {
      return Value::from_bool(!s.empty() && std::all_of(s.begin(), s.end(), predicate));
    };
    if (name == "isdigit") return all([](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
    if (name == "isspace") {
      const auto cps = code_points(s);
      return Value::from_bool(!cps.empty() && std::all_of(cps.begin(), cps.end(), is_python_space));
    }
    if (name == "isalpha") return all([](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; });
    throw RenderError("unsupported string method '" + name + "'");
  });
}

Value items_of(const Value& d) {
  List out;
  if (d.is_undefined()) return Value::from_list({});
  if (!d.is_mapping()) throw RenderError(std::string("items() of a '") + type_name(d) + "'");
  for (const auto& [k, v] : *d.dict) out.push_back(Value::from_list({Value::from_string(k), v}, true));
  return Value::from_list(std::move(out));
}

Value dict_method(const Value& d, const std::string& name) {
  return Value::callable("dict." + name, [d, name](CallArgs& args) -> Value {
    if (name == "items") return items_of(d);
    if (name == "keys" || name == "values") {
      List out;
      for (const auto& [k, v] : *d.dict) out.push_back(name == "keys" ? Value::from_string(k) : v);
      return Value::from_list(std::move(out));
    }
    if (name == "get") {
      const Value* key = argument(args, 0, "key");
      const Value* fallback = argument(args, 1, "default");
      if (!key) throw RenderError("get expected at least 1 argument");
      const Value* found = key->is_string() ? d.find(key->text) : nullptr;
      if (found) return *found;
      return fallback ? *fallback : Value::none();
    }
    throw RenderError("unsupported dict method '" + name + "'");
  });
}

// Python's built-in round(x, n) (round half to even on the exact binary value).
double python_round(double x, std::int64_t digits) {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, "%.*f", static_cast<int>(std::clamp<std::int64_t>(digits, 0, 300)), x);
  return std::strtod(buffer, nullptr);
}

// Jinja sorts and compares strings case-insensitively by default.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::from_string(ascii_lower(v.text));
  return v;
}

Value attribute_path(const Value& v, const Value& path) {
  if (path.kind == Value::Kind::Int) return Builtins::item(v, path);
  Value current = v;
  const std::string& text = need_string(path, "attribute");
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = text.find('.', start);
    const std::string part = text.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
      current = Builtins::item(current, Value::from_int(std::atoll(part.c_str())));
    } else {
      current = Builtins::item(current, Value::from_string(part));
    }
    if (dot == std::string::npos) return current;
    start = dot + 1;
  }
}

CallArgs rest_arguments(const CallArgs& args, std::size_t from) {
  CallArgs out;
  for (std::size_t i = from; i < args.positional.size(); ++i) out.positional.push_back(args.positional[i]);
  return out;
}

Value select_like(const std::string& name, const Value& input, CallArgs& args) {
  const bool by_attribute = name == "selectattr" || name == "rejectattr";
  const bool keep_matching = name == "select" || name == "selectattr";
  std::size_t next = 0;
  Value attribute;
  if (by_attribute) {
    if (args.positional.empty()) throw RenderError(name + " needs an attribute name");
    attribute = args.positional[next++];
  }
  std::string test;
  if (next < args.positional.size()) test = need_string(args.positional[next++], name.c_str());
  CallArgs test_args = rest_arguments(args, next);
  List out;
  for (const Value& item : iterate(input)) {
    const Value subject = by_attribute ? attribute_path(item, attribute) : item;
    const bool matches = test.empty() ? truthy(subject) : Builtins::test(test, subject, test_args);
    if (matches == keep_matching) out.push_back(item);
  }
  return Value::from_list(std::move(out));
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

bool parse_int(const std::string& text, std::int64_t& out) {
  std::string s = strip(text, nullptr, true, true);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

bool parse_float(const std::string& text, double& out) {
  const std::string s = strip(text, nullptr, true, true);
  if (s.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (*end != '\0') return false;
  out = v;
  return true;
}

}  // namespace

Value Builtins::attribute(const Value& object, const std::string& name) {
  switch (object.kind) {
    case Value::Kind::Undefined: throw RenderError(object.text);
    case Value::Kind::String: return string_method(object.text, name);
    case Value::Kind::DictKind: {
      static const char* const kMethods[] = {"items", "keys", "values", "get"};
      static const char* const kUnsupported[] = {"copy", "pop", "popitem", "setdefault", "update", "clear", "fromkeys"};
      for (const char* m : kMethods) {
        if (name == m) return dict_method(object, name);
      }
      for (const char* m : kUnsupported) {
        if (name == m) throw RenderError("unsupported dict method '" + name + "'");
      }
      const Value* found = object.find(name);
      return found ? *found : Value::undefined("'dict object' has no attribute '" + name + "'");
    }
    case Value::Kind::Namespace: {
      const Value* found = object.find(name);
      return found ? *found : Value::undefined("'Namespace' object has no attribute '" + name + "'");
    }
    case Value::Kind::ListKind:
    case Value::Kind::Tuple:
      if (python_lacks_attribute(object.kind == Value::Kind::Tuple
                                     ? std::span<const char* const>(kPythonTupleAttributes)
                                     : std::span<const char* const>(kPythonListAttributes),
                                 name)) {
        return Value::undefined(std::string("'") + type_name(object) + " object' has no attribute '" + name + "'");
      }
      throw RenderError(std::string("unsupported ") + type_name(object) + " attribute or method '" + name + "'");
    default:
      return Value::undefined(std::string("'") + type_name(object) + " object' has no attribute '" + name + "'");
  }
}

Value Builtins::item(const Value& object, const Value& key) {
  switch (object.kind) {
    case Value::Kind::Undefined: throw RenderError(object.text);
    case Value::Kind::DictKind:
    case Value::Kind::Namespace: {
      if (key.is_string()) {
        if (const Value* found = object.find(key.text)) return *found;
        if (object.kind == Value::Kind::DictKind) {
          for (const char* m : {"items", "keys", "values", "get"}) {
            if (key.text == m) return dict_method(object, key.text);
          }
        }
      }
      return Value::undefined("'dict object' has no attribute " + to_repr(key));
    }
    case Value::Kind::ListKind:
    case Value::Kind::Tuple:
    case Value::Kind::String: {
      if (key.is_string()) return object.is_string() ? string_method(object.text, key.text) : attribute(object, key.text);
      if (key.kind != Value::Kind::Int && key.kind != Value::Kind::Bool) {
        throw RenderError(std::string("indices must be integers, not ") + type_name(key));
      }
      std::int64_t i = key.as_integer();
      if (object.is_string()) {
        const auto chars = code_points(object.text);
        const auto n = static_cast<std::int64_t>(chars.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::undefined("string index out of range");
        return Value::from_string(chars[static_cast<std::size_t>(i)]);
      }
      const auto n = static_cast<std::int64_t>(object.list->size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined(std::string(type_name(object)) + " object has no element " + std::to_string(key.integer));
      return (*object.list)[static_cast<std::size_t>(i)];
    }
    default: return Value::undefined(std::string("'") + type_name(object) + " object' has no attribute " + to_repr(key));
  }
}

bool Builtins::test(const std::string& name, const Value& v, CallArgs& args) {
  const Value* a0 = argument(args, 0, "__0");
  const auto need = [&]() -> const Value& {
    if (!a0) throw RenderError("test '" + name + "' needs an argument");
    return *a0;
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind == Value::Kind::Int;
  if (name == "float") return v.kind == Value::Kind::Float;
  if (name == "boolean") return v.kind == Value::Kind::Bool;
  if (name == "true") return v.kind == Value::Kind::Bool && v.boolean;
  if (name == "false") return v.kind == Value::Kind::Bool && !v.boolean;
  if (name == "mapping") return v.is_mapping();
  if (name == "iterable") {
    return v.is_string() || v.is_sequence() || v.is_mapping() || v.is_undefined();
  }
  if (name == "sequence") return v.is_string() || v.is_sequence() || v.is_mapping();
  if (name == "callable") return v.kind == Value::Kind::Callable;
  if (name == "odd") return v.as_integer() % 2 != 0;
  if (name == "even") return v.as_integer() % 2 == 0;
  if (name == "divisibleby") return v.as_integer() % need().as_integer() == 0;
  if (name == "lower") return v.is_string() && ascii_lower(v.text) == v.text;
  if (name == "upper") return v.is_string() && ascii_upper(v.text) == v.text;
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") {
    if (name == "sameas" && !(v.is_none() || v.kind == Value::Kind::Bool)) {
      throw RenderError("unsupported: 'sameas' test on a " + std::string(type_name(v)));
    }
    return equal(v, need()) && (name != "sameas" || v.kind == need().kind);
  }
  if (name == "ne" || name == "!=") return !equal(v, need());
  if (name == "lt" || name == "lessthan" || name == "<") return compare(v, need()) < 0;
  if (name == "le" || name == "<=") return compare(v, need()) <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return compare(v, need()) > 0;
  if (name == "ge" || name == ">=") return compare(v, need()) >= 0;
  if (name == "in") {
    const Value& container = need();
    if (container.is_string()) return v.is_string() && container.text.find(v.text) != std::string::npos;
    if (container.is_mapping()) return v.is_string() && container.find(v.text);
    for (const Value& item : iterate(container)) {
      if (equal(item, v)) return true;
    }
    return false;
  }
  throw RenderError("unsupported test '" + name + "'");
}

Value Builtins::filter(const std::string& name, const Value& v, CallArgs& args) {
  const Value* a0 = args.positional.empty() ? nullptr : &args.positional[0];
  if (name == "tojson") {
    const Value* indent = argument(args, 0, "indent");
    const Value* sort_keys = argument(args, 3, "sort_keys");
    const Value* ensure_ascii = argument(args, 100, "ensure_ascii");
    if (ensure_ascii && truthy(*ensure_ascii)) throw RenderError("unsupported: tojson(ensure_ascii=True)");
    if (argument(args, 2, "separators") && !argument(args, 2, "separators")->is_none()) {
      throw RenderError("unsupported: tojson(separators=...)");
    }
    const int width = indent && !indent->is_none() ? static_cast<int>(indent->as_integer()) : -1;
    return Value::from_string(to_json_text(v, width, sort_keys && truthy(*sort_keys)));
  }
  if (name == "default" || name == "d") {
    const Value* fallback = argument(args, 0, "default_value");
    const Value* boolean = argument(args, 1, "boolean");
    const bool use = boolean && truthy(*boolean) ? !truthy(v) : v.is_undefined();
    if (use) return fallback ? *fallback : Value::from_string("");
    return v;
  }
  if (name == "length" || name == "count") return Value::from_int(static_cast<std::int64_t>(length(v)));
  if (name == "string") return Value::from_string(to_str(v));
  if (name == "safe" || name == "escape" || name == "e" || name == "forceescape") {
    Value marked = Value::from_string(name == "safe" || (v.markup && name != "forceescape") ? to_str(v) : html_escape(to_str(v)));
    marked.markup = true;
    return marked;
  }
  if (name == "list") return Value::from_list(iterate(v));
  if (name == "items") return items_of(v);
  if (name == "trim") return Value::from_string(strip(to_str(v), argument(args, 0, "chars"), true, true));
  if (name == "upper") return Value::from_string(ascii_upper(to_str(v)));
  if (name == "lower") return Value::from_string(ascii_lower(to_str(v)));
  if (name == "title") return Value::from_string(jinja_title(to_str(v)));
  if (name == "capitalize") return Value::from_string(capitalize(to_str(v)));
  if (name == "replace") {
    if (args.positional.size() < 2) throw RenderError("replace filter needs old and new strings");
    const Value* count = argument(args, 2, "count");
    return Value::from_string(replace(to_str(v), need_string(args.positional[0], "replace"),
                                      need_string(args.positional[1], "replace"), count ? count->as_integer() : -1));
  }
  if (name == "join") {
    const Value* separator = argument(args, 0, "d");
    const Value* attribute = argument(args, 1, "attribute");
    std::string out;
    bool first = true;
    if (separator) refuse_markup(*separator, "join");
    for (const Value& item : iterate(v)) {
      refuse_markup(item, "join");
      if (!first && separator) out += to_str(*separator);
      first = false;
      out += to_str(attribute ? attribute_path(item, *attribute) : item);
    }
    return Value::from_string(std::move(out));
  }
  if (name == "first" || name == "last") {
    const List items = iterate(v);
    if (items.empty()) return Value::undefined("No first item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      auto chars = code_points(v.text);
      std::string out;
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
      return Value::from_string(std::move(out));
    }
    List items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::from_list(std::move(items));
  }
  if (name == "int") {
    const Value* fallback = argument(args, 0, "default");
    const Value dflt = fallback ? *fallback : Value::from_int(0);
    if (argument(args, 1, "base")) throw RenderError("unsupported: int filter with base");
    if (v.kind == Value::Kind::Int) return v;
    if (v.kind == Value::Kind::Bool) return Value::from_int(v.boolean ? 1 : 0);
    if (v.kind == Value::Kind::Float) return Value::from_int(static_cast<std::int64_t>(v.number));
    if (v.is_string()) {
      std::int64_t i = 0;
      double f = 0;
      if (parse_int(v.text, i)) return Value::from_int(i);
      if (parse_float(v.text, f) && std::isfinite(f)) return Value::from_int(static_cast<std::int64_t>(f));
    }
    return dflt;
  }
  if (name == "float") {
    const Value* fallback = argument(args, 0, "default");
    if (v.is_number()) return Value::from_float(v.as_double());
    double f = 0;
    if (v.is_string() && parse_float(v.text, f)) return Value::from_float(f);
    return fallback ? *fallback : Value::from_float(0.0);
  }
  if (name == "abs") {
    if (v.kind == Value::Kind::Float) return Value::from_float(std::fabs(v.number));
    const std::int64_t i = v.as_integer();
    return Value::from_int(i < 0 ? -i : i);
  }
  if (name == "round") {
    const Value* precision = argument(args, 0, "precision");
    const Value* method = argument(args, 1, "method");
    const std::int64_t digits = precision ? precision->as_integer() : 0;
    const std::string how = method ? need_string(*method, "round") : "common";
    const double x = v.as_double();
    if (how == "common") return Value::from_float(python_round(x, digits));
    const double scale = std::pow(10.0, static_cast<double>(digits));
    if (how == "ceil") return Value::from_float(std::ceil(x * scale) / scale);
    if (how == "floor") return Value::from_float(std::floor(x * scale) / scale);
    throw RenderError("method must be common, ceil or floor");
  }
  if (name == "indent") {
    const Value* width_value = argument(args, 0, "width");
    const Value* first = argument(args, 1, "first");
    const Value* blank = argument(args, 2, "blank");
    const std::string indention = width_value && width_value->is_string()
                                      ? width_value->text
                                      : std::string(static_cast<std::size_t>(width_value ? width_value->as_integer() : 4), ' ');
    std::string s = to_str(v) + "\n";
    std::vector<std::string> lines;
    for (std::size_t start = 0; start < s.size();) {
      const std::size_t nl = s.find('\n', start);
      lines.push_back(s.substr(start, nl - start));
      start = nl + 1;
    }
    std::string out;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (i) out += "\n";
      if (i && (!lines[i].empty() || (blank && truthy(*blank)))) out += indention;
      out += lines[i];
    }
    if (first && truthy(*first)) out = indention + out;
    return Value::from_string(std::move(out));
  }
  if (name == "unique" || name == "sort" || name == "min" || name == "max" || name == "dictsort") {
    const Value* case_sensitive_value = argument(args, name == "sort" ? 1 : 0, "case_sensitive");
    const bool case_sensitive = case_sensitive_value && truthy(*case_sensitive_value);
    const Value* attribute = argument(args, name == "sort" ? 2 : (name == "unique" ? 1 : 1), "attribute");
    if (name == "dictsort") attribute = nullptr;
    const auto key = [&](const Value& item) {
      return sort_key(attribute ? attribute_path(item, *attribute) : item, case_sensitive);
    };
    if (name == "dictsort") {
      if (!v.is_mapping()) throw RenderError("dictsort expects a dict");
      const Value* by = argument(args, 1, "by");
      const Value* reverse = argument(args, 2, "reverse");
      const std::size_t position = by && by->is_string() && by->text == "value" ? 1 : 0;
      List items = *items_of(v).list;
      std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
        return compare(key((*a.list)[position]), key((*b.list)[position])) < 0;
      });
      if (reverse && truthy(*reverse)) std::reverse(items.begin(), items.end());
      return Value::from_list(std::move(items));
    }
    List items = iterate(v);
    if (name == "unique") {
      List out;
      std::vector<Value> seen;
      for (const Value& item : items) {
        const Value k = key(item);
        if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equal(s, k); })) {
          seen.push_back(k);
          out.push_back(item);
        }
      }
      return Value::from_list(std::move(out));
    }
    if (name == "sort") {
      const Value* reverse = argument(args, 0, "reverse");
      std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) { return compare(key(a), key(b)) < 0; });
      if (reverse && truthy(*reverse)) std::reverse(items.begin(), items.end());
      return Value::from_list(std::move(items));
    }
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    Value best = items.front();
    for (const Value& item : items) {
      const int c = compare(key(item), key(best));
      if (name == "min" ? c < 0 : c > 0) best = item;
    }
    return best;
  }
  if (name == "sum") {
    const Value* attribute = argument(args, 0, "attribute");
    const Value* start = argument(args, 1, "start");
    Value total = start ? *start : Value::from_int(0);
    for (const Value& item : iterate(v)) {
      const Value x = attribute ? attribute_path(item, *attribute) : item;
      if (!x.is_number() || !total.is_number()) throw RenderError("sum of non-numbers");
      if (x.kind == Value::Kind::Float || total.kind == Value::Kind::Float) total = Value::from_float(total.as_double() + x.as_double());
      else total = Value::from_int(total.as_integer() + x.as_integer());
    }
    return total;
  }
  if (name == "wordcount") {
    return Value::from_int(static_cast<std::int64_t>(split(to_str(v), nullptr, nullptr).list->size()));
  }
  if (name == "map") {
    List out;
    const Value* attribute = argument(args, 100, "attribute");
    if (attribute) {
      const Value* fallback = argument(args, 100, "default");
      for (const Value& item : iterate(v)) {
        Value x = attribute_path(item, *attribute);
        if (x.is_undefined() && fallback) x = *fallback;
        out.push_back(std::move(x));
      }
      return Value::from_list(std::move(out));
    }
    if (!a0) throw RenderError("map needs a filter name or attribute=");
    const std::string filter_name = need_string(*a0, "map");
    CallArgs filter_args = rest_arguments(args, 1);
    filter_args.keyword = args.keyword;
    for (const Value& item : iterate(v)) {
      CallArgs copy = filter_args;
      out.push_back(filter(filter_name, item, copy));
    }
    return Value::from_list(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    return select_like(name, v, args);
  }
  throw RenderError("unsupported filter '" + name + "'");
}

void Builtins::add_globals(Dict& globals, const std::shared_ptr<std::vector<std::shared_ptr<Dict>>>& namespaces) {
  globals.emplace_back("range", Value::callable("range", [](CallArgs& args) {
    std::int64_t start = 0, stop = 0, step = 1;
    const auto n = args.positional.size();
    if (n == 1) stop = args.positional[0].as_integer();
    else if (n == 2 || n == 3) {
      start = args.positional[0].as_integer();
      stop = args.positional[1].as_integer();
      if (n == 3) step = args.positional[2].as_integer();
    } else {
      throw RenderError("range expected 1 to 3 arguments");
    }
    if (step == 0) throw RenderError("range() arg 3 must not be zero");
    List out;
    for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (out.size() >= 100000) throw RenderError("range too big");
      out.push_back(Value::from_int(i));
    }
    return Value::from_list(std::move(out));
  }));
  std::weak_ptr<std::vector<std::shared_ptr<Dict>>> registry = namespaces;
  globals.emplace_back("namespace", Value::callable("namespace", [registry](CallArgs& args) {
    if (!args.positional.empty()) {
      if (args.positional.size() > 1 || !args.positional[0].is_mapping()) {
        throw RenderError("unsupported: namespace() with positional arguments other than one dict");
      }
    }
    Value ns;
    ns.kind = Value::Kind::Namespace;
    ns.dict = std::make_shared<Dict>(args.positional.empty() ? Dict{} : *args.positional[0].dict);
    for (auto& [key, value] : args.keyword) ns.dict->emplace_back(key, value);
    if (const auto created = registry.lock()) created->push_back(ns.dict);
    return ns;
  }));
  globals.emplace_back("dict", Value::callable("dict", [](CallArgs& args) {
    if (!args.positional.empty()) throw RenderError("unsupported: dict() with positional arguments");
    Dict d(args.keyword.begin(), args.keyword.end());
    return Value::from_dict(std::move(d));
  }));
  globals.emplace_back("raise_exception", Value::callable("raise_exception", [](CallArgs& args) -> Value {
    throw RenderError("raise_exception: " + (args.positional.empty() ? std::string() : to_str(args.positional[0])));
  }));
  globals.emplace_back("strftime_now", Value::callable("strftime_now", [](CallArgs& args) {
    if (args.positional.empty()) throw RenderError("strftime_now needs a format");
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buffer[256];
    const std::size_t n = std::strftime(buffer, sizeof buffer, need_string(args.positional[0], "strftime_now").c_str(), &local);
    return Value::from_string(std::string(buffer, n));
  }));
}

}  // namespace q3vl::jinja
