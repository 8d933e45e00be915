// The JSON matcher behind structured output: documents that match a schema are taken byte by byte
// and those that do not are refused at the first byte that cannot fit; the shortest completion of
// any prefix makes a document JSON parsers read (nlohmann) and the matcher accepts; schemas with
// keywords it cannot enforce are refused by name.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/json_matcher.h"
#include "q3vl/error.h"

namespace q3vl {
namespace {

JsonSchema schema_of(const char* text) { return JsonSchema::compile(nlohmann::ordered_json::parse(text)); }

// Feeds `document`: the bytes taken before the first refused one, or its length.
std::size_t taken(const JsonSchema& schema, const std::string& document, bool* complete = nullptr) {
  JsonMatcher matcher(schema.root());
  std::size_t n = 0;
  while (n < document.size() && matcher.feed(static_cast<unsigned char>(document[n]))) ++n;
  if (complete != nullptr) *complete = matcher.complete();
  return n;
}

const char* kPerson = R"({"type":"object","properties":{"name":{"type":"string","maxLength":5},"age":{"type":"integer"},
  "tags":{"type":"array","items":{"enum":["a","b"]},"minItems":1,"maxItems":2}},"required":["name","age"]})";

TEST(JsonMatcher, TakesMatchingDocumentsWhole) {
  const JsonSchema person = schema_of(kPerson);
  int checked = 0;
  for (const std::string document : {R"({"name":"Ada","age":36})", R"({"name": "Ada", "age": -3, "tags": ["a", "b"]})",
                                     R"({"name":"\u00e9\n","age":0,"tags":["b"]})", "{\"name\":\"\xC3\xA9t\xC3\xA9\",\"age\":10}"}) {
    bool complete = false;
    EXPECT_EQ(taken(person, document, &complete), document.size()) << document;
    EXPECT_TRUE(complete) << document;
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

TEST(JsonMatcher, RefusesAtTheFirstByteThatCannotFit) {
  const JsonSchema person = schema_of(kPerson);
  const std::pair<std::string, std::size_t> cases[] = {
      {R"({"age":1})", 2},                           // "name" is required first
      {R"({"name":"Adaline","age":1})", 14},         // maxLength 5: the sixth character
      {R"({"name":"Ada","age":1.5})", 21},           // an integer has no fraction
      {R"({"name":"Ada"})", 13},                     // age is required
      {R"({"name":"Ada","age":1,"tags":[]})", 30},   // minItems 1
      {R"({"name":"Ada","age":1,"tags":["c"]})", 31},  // not in the enum
      {R"({"name":"Ada","age":1,"tags":["a","b","a"]})", 37},  // maxItems 2
      {R"({"name":"Ada","age":1,"x":1})", 23},       // no other properties
      {R"({"name":"A)" "\x01", 10},                  // a raw control byte in a string
      {"{\"name\":\"\xC3(", 10},                     // a cut UTF-8 character
      {R"({"name":"A\q"})", 11},                     // an escape JSON does not have
      {R"({"name":"Ada","age":01})", 21},            // no leading zeros
  };
  for (const auto& [document, at] : cases) EXPECT_EQ(taken(person, document), at) << document;
}

TEST(JsonMatcher, AnyOfFollowsEveryAlternative) {
  const JsonSchema schema = schema_of(R"({"anyOf":[{"type":"object","properties":{"v":{"type":"number"}},"required":["v"]},
    {"type":"object","properties":{"e":{"type":"string"}},"required":["e"]},{"type":["null","boolean"]}]})");
  for (const std::string document : {R"({"v":1e-3})", R"({"e":""})", "null", "false"}) {
    bool complete = false;
    EXPECT_EQ(taken(schema, document, &complete), document.size()) << document;
    EXPECT_TRUE(complete) << document;
  }
  EXPECT_EQ(taken(schema, R"({"x":1})"), 2u);
}

// The shortest completion of every prefix of some documents parses as JSON and the matcher takes it.
TEST(JsonMatcher, ShortestCompletionOfEveryPrefixIsADocument) {
  const JsonSchema person = schema_of(kPerson);
  const JsonSchema any = JsonSchema::any_object();
  int checked = 0;
  for (const auto& [schema, document] : {std::pair{&person, std::string(R"({"name": "A\u00e9", "age": -12, "tags": ["a", "b"]})")},
                                         std::pair{&any, std::string(R"({"k": [1.5e+3, {"x": null}], "s": "\n\u0041", "t": true})")}}) {
    JsonMatcher matcher(schema->root());
    for (std::size_t n = 0; n <= document.size(); ++n) {
      const std::string completion = matcher.shortest_completion();
      const std::string whole = document.substr(0, n) + completion;
      JsonMatcher copy = matcher;
      EXPECT_TRUE(copy.feed(completion)) << whole;
      EXPECT_TRUE(copy.complete()) << whole;
      EXPECT_TRUE(nlohmann::json::accept(whole)) << whole;
      ++checked;
      if (n < document.size()) {
        ASSERT_TRUE(matcher.feed(static_cast<unsigned char>(document[n]))) << document.substr(0, n + 1);
      }
    }
  }
  EXPECT_EQ(checked, 52 + 57);
}

TEST(JsonSchemaCompile, RefusesWhatItCannotEnforceByName) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"type":"string","pattern":"^a"})", "'pattern'"},
      {R"({"type":"object","properties":{"d":{"type":"string","format":"date"}}})", "#/properties/d: 'format'"},
      {R"({"type":"integer","minimum":1})", "'minimum'"},
      {R"({"$ref":"#/$defs/x"})", "'$ref'"},
      {R"({"type":"object","properties":{"a":{}},"required":["b"]})", "required property 'b'"},
      {R"({"type":"wat"})", "unknown type"},
      // Hostile: a few bytes of schema whose shortest document is 100000^3 items long.
      {R"({"type":"array","minItems":100000,"items":{"type":"array","minItems":100000,"items":{"type":"array","minItems":100000}}})",
       "longer than 1 MiB"},
      {R"({"type":"string","minLength":100000,"maxLength":100000000})", "maxLength must be an integer from 0 to 100000"},
  };
  for (const auto& [schema, message] : cases) {
    try {
      schema_of(schema);
      ADD_FAILURE() << "accepted: " << schema;
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace q3vl
