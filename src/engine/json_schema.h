#pragma once
// A JSON Schema compiled for constrained decoding: the subset structured-output clients use (types,
// properties/required, enum/const, arrays with min/max items, nested objects, anyOf, string
// lengths). Keywords that would constrain the output in ways the decoder cannot enforce (pattern,
// format, numeric ranges, $ref, ...) are refused with a message naming them and where they are.
// Objects are generated with their declared properties only: the required ones first, in the order
// of `required`, then the optional ones in declared order.
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace q3vl {

struct SchemaNode {
  enum class Kind { Any, Object, Array, String, Number, Integer, Boolean, Null, Literals, AnyOf };
  Kind kind = Kind::Any;
  struct Property {
    std::string name;
    const SchemaNode* schema = nullptr;
    bool required = false;
  };
  std::vector<Property> properties;  // Object: declared ones; none and free_keys: any key, any value
  bool free_keys = false;
  const SchemaNode* items = nullptr;  // Array
  std::int64_t min_items = 0, max_items = -1;
  std::int64_t min_length = 0, max_length = -1;  // String, in characters
  std::vector<std::string> literals;             // Literals: each allowed value as compact JSON text
  std::vector<const SchemaNode*> alternatives;   // AnyOf
};

class JsonSchema {
 public:
  // Throws InvalidInput naming what is not supported and where (a JSON pointer).
  static JsonSchema compile(const nlohmann::ordered_json& schema);  // ordered: declared property order
  // Any JSON object (OpenAI's response_format json_object).
  static JsonSchema any_object();

  const SchemaNode& root() const { return *root_; }

  JsonSchema(JsonSchema&&) noexcept = default;
  JsonSchema& operator=(JsonSchema&&) noexcept = default;

 private:
  JsonSchema() = default;
  const SchemaNode* add(const nlohmann::ordered_json& schema, const std::string& where, int depth);
  SchemaNode& make() { return nodes_.emplace_back(); }

  std::deque<SchemaNode> nodes_;  // stable addresses
  const SchemaNode* root_ = nullptr;
};

}  // namespace q3vl
