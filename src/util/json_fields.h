#pragma once
// Reading JSON a user's file holds (config.json, generation/preprocessor configs, the package
// manifest): bounded parsing and typed field access whose errors name the file and the field path,
// e.g. `PKG/q3vl_package.json: field "config.text_config.hidden_size": expected an integer, got string`.
// Never lets a json.exception escape.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace q3vl {

// Real configs nest 4 levels deep and weigh a few KB (a sharded index a few MB); the bounds keep hostile files from
// exhausting the stack (nlohmann's dump, copy and compare recurse) or memory.
inline constexpr int kMaxJsonDepth = 64;
inline constexpr std::uint64_t kMaxConfigFileBytes = 16ull << 20;

// Parses `text`; throws InvalidInput naming `source` if it is not JSON or nests deeper than kMaxJsonDepth.
nlohmann::json parse_json_bounded(std::string_view text, const std::string& source);
// The same keeping the members' order (what a chat template's tojson shows, a schema's property order).
nlohmann::ordered_json parse_ordered_json_bounded(std::string_view text, const std::string& source);
// Reads and parses a config file, refusing files larger than `max_bytes`.
nlohmann::json read_json_bounded(const std::filesystem::path& path, std::uint64_t max_bytes = kMaxConfigFileBytes);

// "string", "integer", "number", "array", ... (what a user would call the JSON value's type).
std::string json_type_name(const nlohmann::json& value);
std::string json_type_name(const nlohmann::ordered_json& value);

// A JSON value inside a file, with its field path for error messages. Holds a reference: the
// document must outlive it.
class JsonField {
 public:
  JsonField(const nlohmann::json& value, std::string file, std::string path = "");

  const nlohmann::json& value() const { return *value_; }
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }

  // Object members. A member that is null counts as absent (HF treats None as unset).
  bool has(std::string_view key) const;
  JsonField at(std::string_view key) const;  // required member (throws "missing field")
  std::optional<JsonField> find(std::string_view key) const;
  JsonField object(std::string_view key) const;  // required member that must be an object

  // Typed values of this field.
  std::int64_t integer() const;
  double number() const;  // a finite number (integers allowed)
  bool boolean() const;
  std::string string() const;
  std::vector<JsonField> items() const;  // an array's elements, at most `max_items`
  std::vector<JsonField> items(std::size_t max_items) const;
  std::vector<std::int64_t> integers(std::size_t max_items) const;

  // Typed members with defaults for absent ones.
  std::int64_t integer(std::string_view key, std::int64_t fallback) const;
  double number(std::string_view key, double fallback) const;
  bool boolean(std::string_view key, bool fallback) const;
  std::string string(std::string_view key, const std::string& fallback) const;

  // The object must be one: throws otherwise.
  const JsonField& require_object() const;

  // Throws InvalidInput "FILE: field "PATH": what".
  [[noreturn]] void fail(const std::string& what) const;
  // "expected X, got <type> <short value>".
  [[noreturn]] void expected(const std::string& what) const;

 private:
  JsonField child(std::string_view key, const nlohmann::json& value) const;

  const nlohmann::json* value_;
  std::string file_;
  std::string path_;
};

}  // namespace q3vl
