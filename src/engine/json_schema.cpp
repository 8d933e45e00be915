#include "engine/json_schema.h"

#include <algorithm>
#include <set>

#include "q3vl/error.h"

namespace q3vl {
namespace {

using json = nlohmann::ordered_json;

// Words that describe a schema without constraining its values.
const std::set<std::string> kAnnotations = {"title", "description", "$schema", "$id", "$comment", "default",
                                            "examples", "strict", "additionalProperties", "name", "deprecated",
                                            "readOnly", "writeOnly"};
const std::set<std::string> kUnderstood = {"type", "properties", "required", "items", "minItems", "maxItems",
                                           "enum", "const", "anyOf", "oneOf", "minLength", "maxLength"};

std::int64_t count_of(const json& schema, const char* key, const std::string& where) {
  if (!schema.contains(key)) return -1;
  const json& value = schema.at(key);
  if (!value.is_number_integer() || value.get<std::int64_t>() < 0 || value.get<std::int64_t>() > 100000) {
    throw InvalidInput("JSON schema " + where + ": " + key + " must be an integer from 0 to 100000");
  }
  return value.get<std::int64_t>();
}

// Bytes of the shortest document `node` allows, saturating: minItems and minLength multiply down
// nested levels, so a small schema can ask for more than any reply holds.
constexpr std::uint64_t kMost = std::uint64_t{1} << 40;  // "more than anything we write"

std::uint64_t shortest_bytes(const SchemaNode& node) {
  const auto add = [](std::uint64_t a, std::uint64_t b) { return std::min(a + b, kMost); };
  const auto times = [](std::uint64_t a, std::uint64_t b) { return a != 0 && b > kMost / a ? kMost : std::min(a * b, kMost); };
  switch (node.kind) {
    case SchemaNode::Kind::Boolean:
    case SchemaNode::Kind::Null: return 4;
    case SchemaNode::Kind::String: return add(2, static_cast<std::uint64_t>(node.min_length) * 4);  // a character: up to 4 bytes
    case SchemaNode::Kind::Literals: {
      std::uint64_t best = kMost;
      for (const std::string& literal : node.literals) best = std::min<std::uint64_t>(best, literal.size());
      return best;
    }
    case SchemaNode::Kind::AnyOf: {
      std::uint64_t best = kMost;
      for (const SchemaNode* alternative : node.alternatives) best = std::min(best, shortest_bytes(*alternative));
      return best;
    }
    case SchemaNode::Kind::Array: return add(2, times(static_cast<std::uint64_t>(node.min_items), add(shortest_bytes(*node.items), 1)));
    case SchemaNode::Kind::Object: {
      std::uint64_t total = 2;
      for (const SchemaNode::Property& p : node.properties) {
        if (p.required) total = add(total, add(p.name.size() + 4, shortest_bytes(*p.schema)));
      }
      return total;
    }
    default: return 1;
  }
}

}  // namespace

JsonSchema JsonSchema::any_object() {
  JsonSchema schema;
  SchemaNode& root = schema.make();
  root.kind = SchemaNode::Kind::Object;
  root.free_keys = true;
  schema.root_ = &root;
  return schema;
}

JsonSchema JsonSchema::compile(const json& schema) {
  JsonSchema compiled;
  compiled.root_ = compiled.add(schema, "#", 0);
  // Its shortest document is written out when a reply must be completed: bound it first.
  constexpr std::uint64_t kLongest = std::uint64_t{1} << 20;
  if (shortest_bytes(*compiled.root_) > kLongest) {
    throw InvalidInput("JSON schema #: its shortest document is longer than 1 MiB (minItems/minLength multiplied down its levels)");
  }
  return compiled;
}

const SchemaNode* JsonSchema::add(const json& schema, const std::string& where, int depth) {
  if (depth > 32) throw InvalidInput("JSON schema " + where + ": nested deeper than 32 levels");
  SchemaNode& node = make();
  if (schema.is_boolean() && schema.get<bool>()) return &node;  // `true`: any value
  if (!schema.is_object()) throw InvalidInput("JSON schema " + where + ": a schema must be an object");
  for (const auto& [key, value] : schema.items()) {
    if (kAnnotations.count(key) == 0 && kUnderstood.count(key) == 0) {
      throw InvalidInput("JSON schema " + where + ": '" + key +
                         "' is not supported in constrained decoding (supported: type, properties, required, items, "
                         "minItems, maxItems, enum, const, anyOf, minLength, maxLength)");
    }
  }
  if (schema.contains("enum") || schema.contains("const")) {
    node.kind = SchemaNode::Kind::Literals;
    const json values = schema.contains("const") ? json::array({schema.at("const")}) : schema.at("enum");
    if (!values.is_array() || values.empty()) throw InvalidInput("JSON schema " + where + ": enum must be a non-empty list");
    for (const json& value : values) {
      if (value.is_object() || value.is_array()) throw InvalidInput("JSON schema " + where + ": enum values must be strings, numbers, booleans or null");
      node.literals.push_back(value.dump(-1, ' ', false));
    }
    if (node.literals.size() > 64) throw InvalidInput("JSON schema " + where + ": more than 64 enum values");
    return &node;
  }
  for (const char* key : {"anyOf", "oneOf"}) {
    if (!schema.contains(key)) continue;
    const json& options = schema.at(key);
    if (!options.is_array() || options.empty()) throw InvalidInput("JSON schema " + where + ": " + key + " must be a non-empty list");
    node.kind = SchemaNode::Kind::AnyOf;
    for (std::size_t i = 0; i < options.size(); ++i) {
      node.alternatives.push_back(add(options[i], where + "/" + key + "/" + std::to_string(i), depth + 1));
    }
    return &node;
  }
  if (!schema.contains("type")) return &node;  // any value
  const json& type = schema.at("type");
  if (type.is_array()) {  // ["string", "null"]: one alternative per type
    node.kind = SchemaNode::Kind::AnyOf;
    for (const json& one : type) {
      json alternative = schema;
      alternative["type"] = one;
      node.alternatives.push_back(add(alternative, where, depth + 1));
    }
    if (node.alternatives.empty()) throw InvalidInput("JSON schema " + where + ": type must not be an empty list");
    return &node;
  }
  const std::string name = type.is_string() ? type.get<std::string>() : "";
  if (name == "object") {
    node.kind = SchemaNode::Kind::Object;
    std::set<std::string> required;
    if (schema.contains("required") && !schema.at("required").is_array()) throw InvalidInput("JSON schema " + where + ": required must be a list");
    if (schema.contains("required")) {
      for (const json& key : schema.at("required")) {
        if (!key.is_string()) throw InvalidInput("JSON schema " + where + ": required must list property names");
        required.insert(key.get<std::string>());
      }
    }
    if (!schema.contains("properties")) {
      if (!required.empty()) throw InvalidInput("JSON schema " + where + ": required properties without their schemas");
      node.free_keys = true;
      return &node;
    }
    if (!schema.at("properties").is_object()) throw InvalidInput("JSON schema " + where + ": properties must be an object");
    for (const auto& [key, value] : schema.at("properties").items()) {
      const bool plain = std::all_of(key.begin(), key.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x20 && c != '"' && c != '\\'; });
      if (!plain || key.empty()) throw InvalidInput("JSON schema " + where + ": property name '" + key + "' needs escaping; not supported");
      node.properties.push_back({key, add(value, where + "/properties/" + key, depth + 1), required.erase(key) > 0});
    }
    if (!required.empty()) throw InvalidInput("JSON schema " + where + ": required property '" + *required.begin() + "' is not among the properties");
    // Required properties first, in the order `required` lists them (JSON arrays keep their order
    // through any parser; objects may not), then the others in the schema's order.
    std::vector<std::string> order;
    if (schema.contains("required")) {
      for (const json& key : schema.at("required")) order.push_back(key.get<std::string>());
    }
    std::stable_sort(node.properties.begin(), node.properties.end(), [&](const SchemaNode::Property& a, const SchemaNode::Property& b) {
      const auto rank = [&](const std::string& property) {
        return static_cast<std::size_t>(std::find(order.begin(), order.end(), property) - order.begin());
      };
      return rank(a.name) < rank(b.name);
    });
    if (node.properties.size() > 64) throw InvalidInput("JSON schema " + where + ": more than 64 properties");
    return &node;
  }
  if (name == "array") {
    node.kind = SchemaNode::Kind::Array;
    node.items = schema.contains("items") ? add(schema.at("items"), where + "/items", depth + 1) : &make();
    node.min_items = std::max<std::int64_t>(count_of(schema, "minItems", where), 0);
    node.max_items = count_of(schema, "maxItems", where);
    if (node.max_items >= 0 && node.max_items < node.min_items) throw InvalidInput("JSON schema " + where + ": maxItems < minItems");
    return &node;
  }
  if (name == "string") {
    node.kind = SchemaNode::Kind::String;
    node.min_length = std::max<std::int64_t>(count_of(schema, "minLength", where), 0);
    node.max_length = count_of(schema, "maxLength", where);
    if (node.max_length >= 0 && node.max_length < node.min_length) throw InvalidInput("JSON schema " + where + ": maxLength < minLength");
    return &node;
  }
  if (name == "number") node.kind = SchemaNode::Kind::Number;
  else if (name == "integer") node.kind = SchemaNode::Kind::Integer;
  else if (name == "boolean") node.kind = SchemaNode::Kind::Boolean;
  else if (name == "null") node.kind = SchemaNode::Kind::Null;
  else throw InvalidInput("JSON schema " + where + ": unknown type " + type.dump());
  return &node;
}

}  // namespace q3vl
