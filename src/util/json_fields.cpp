#include "util/json_fields.h"

#include <cmath>
#include <fstream>
#include <limits>

#include "q3vl/error.h"

namespace q3vl {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

template <class Json>
Json parse_bounded(std::string_view text, const std::string& source) {
  // The callback sees every value with its depth before it is stored, so a deep file is refused
  // before a deep document exists.
  bool too_deep = false;
  const typename Json::parser_callback_t guard = [&too_deep](int depth, typename Json::parse_event_t, Json&) {
    if (depth > kMaxJsonDepth) {
      too_deep = true;
      throw InvalidInput("");  // stops the parser; replaced by the message below
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), guard);
  } catch (const typename Json::exception& e) {
    throw InvalidInput(source + ": not valid JSON (" + e.what() + ")");
  } catch (const InvalidInput&) {
    if (!too_deep) throw;
    throw InvalidInput(source + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                       " levels (not a configuration file)");
  }
}

}  // namespace

json parse_json_bounded(std::string_view text, const std::string& source) { return parse_bounded<json>(text, source); }

nlohmann::ordered_json parse_ordered_json_bounded(std::string_view text, const std::string& source) {
  return parse_bounded<nlohmann::ordered_json>(text, source);
}

json read_json_bounded(const fs::path& path, std::uint64_t max_bytes) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) throw InvalidInput("cannot open " + path.string() + " (not a file)");
  const std::uintmax_t size = fs::file_size(path, error);
  if (error) throw InvalidInput("cannot read " + path.string() + ": " + error.message());
  if (size > max_bytes) {
    throw InvalidInput(path.string() + ": " + std::to_string(size) + " bytes is too large for a configuration file (at most " +
                       std::to_string(max_bytes) + ")");
  }
  std::ifstream in(path, std::ios::binary);
  std::string text(static_cast<std::size_t>(size), '\0');
  if (!in || !in.read(text.data(), static_cast<std::streamsize>(size))) throw InvalidInput("cannot read " + path.string());
  return parse_json_bounded(text, path.string());
}

namespace {

std::string type_name(json::value_t type) {
  switch (type) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "object";
    case json::value_t::array: return "array";
    case json::value_t::string: return "string";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    default: return "binary";
  }
}

}  // namespace

std::string json_type_name(const json& value) { return type_name(value.type()); }
std::string json_type_name(const nlohmann::ordered_json& value) { return type_name(value.type()); }

namespace {

// The type and, for short scalars, the value: `string "abc"`, `number 4.5`, `array`.
std::string describe(const json& value) {
  std::string out = json_type_name(value);
  if (value.is_primitive() && !value.is_null()) {
    std::string text = value.dump();
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    out += " " + text;
  }
  return out;
}

}  // namespace

JsonField::JsonField(const json& value, std::string file, std::string path)
    : value_(&value), file_(std::move(file)), path_(std::move(path)) {}

void JsonField::fail(const std::string& what) const {
  if (path_.empty()) throw InvalidInput(file_ + ": " + what);
  throw InvalidInput(file_ + ": field \"" + path_ + "\": " + what);
}

void JsonField::expected(const std::string& what) const { fail("expected " + what + ", got " + describe(*value_)); }

const JsonField& JsonField::require_object() const {
  if (!value_->is_object()) expected("an object");
  return *this;
}

JsonField JsonField::child(std::string_view key, const json& value) const {
  return JsonField(value, file_, path_.empty() ? std::string(key) : path_ + "." + std::string(key));
}

bool JsonField::has(std::string_view key) const {
  require_object();
  const auto it = value_->find(key);
  return it != value_->end() && !it->is_null();
}

std::optional<JsonField> JsonField::find(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return child(key, *value_->find(key));
}

JsonField JsonField::at(std::string_view key) const {
  if (!has(key)) {
    if (path_.empty()) throw InvalidInput(file_ + ": missing field \"" + std::string(key) + "\"");
    throw InvalidInput(file_ + ": missing field \"" + path_ + "." + std::string(key) + "\"");
  }
  return child(key, *value_->find(key));
}

JsonField JsonField::object(std::string_view key) const {
  JsonField field = at(key);
  field.require_object();
  return field;
}

std::int64_t JsonField::integer() const {
  if (value_->is_number_unsigned() && value_->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    fail("integer " + value_->dump() + " is out of range");
  }
  if (!value_->is_number_integer()) expected("an integer");
  return value_->get<std::int64_t>();
}

double JsonField::number() const {
  if (!value_->is_number()) expected("a number");
  const double number = value_->get<double>();
  if (!std::isfinite(number)) fail("number " + value_->dump() + " is not finite");
  return number;
}

bool JsonField::boolean() const {
  if (!value_->is_boolean()) expected("true or false");
  return value_->get<bool>();
}

std::string JsonField::string() const {
  if (!value_->is_string()) expected("a string");
  return value_->get<std::string>();
}

std::vector<JsonField> JsonField::items() const { return items(std::numeric_limits<std::size_t>::max()); }

std::vector<JsonField> JsonField::items(std::size_t max_items) const {
  if (!value_->is_array()) expected("an array");
  if (value_->size() > max_items) {
    fail("array of " + std::to_string(value_->size()) + " entries, at most " + std::to_string(max_items) + " allowed");
  }
  std::vector<JsonField> out;
  out.reserve(value_->size());
  for (std::size_t i = 0; i < value_->size(); ++i) out.emplace_back((*value_)[i], file_, path_ + "[" + std::to_string(i) + "]");
  return out;
}

std::vector<std::int64_t> JsonField::integers(std::size_t max_items) const {
  std::vector<std::int64_t> out;
  for (const JsonField& item : items(max_items)) out.push_back(item.integer());
  return out;
}

std::int64_t JsonField::integer(std::string_view key, std::int64_t fallback) const {
  const auto field = find(key);
  return field ? field->integer() : fallback;
}
double JsonField::number(std::string_view key, double fallback) const {
  const auto field = find(key);
  return field ? field->number() : fallback;
}
bool JsonField::boolean(std::string_view key, bool fallback) const {
  const auto field = find(key);
  return field ? field->boolean() : fallback;
}
std::string JsonField::string(std::string_view key, const std::string& fallback) const {
  const auto field = find(key);
  return field ? field->string() : fallback;
}

}  // namespace q3vl
