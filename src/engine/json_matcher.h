#pragma once
// Which bytes may come next in a JSON document that must match a compiled schema: a pushdown
// automaton fed one byte at a time. It accepts compact JSON (one optional space after ':' and ','),
// strings of valid UTF-8 with JSON's escapes, and for anyOf follows each alternative that still
// fits. A value copy is a snapshot (the token mask tries bytes on copies).
#include <cstdint>
#include <string>
#include <vector>

#include "engine/json_schema.h"

namespace q3vl {

class JsonMatcher {
 public:
  explicit JsonMatcher(const SchemaNode& root);

  // Takes `byte` if it can continue a matching document; false (and no change) if not.
  bool feed(unsigned char byte);
  bool feed(const std::string& bytes);  // all or nothing
  // The document is whole (nothing more may follow).
  bool complete() const;
  // The shortest text that makes the document whole (empty when it is).
  std::string shortest_completion() const;
  // When the only way forward is inside a free string and no escape is pending: true, with how many
  // more characters it may take (-1: any number), and the UTF-8 continuation bytes still due
  // (`pending`, the first in [low, high]). Those bytes and then plain text continue it.
  bool in_string(std::int64_t& room, int& pending, std::uint8_t& low, std::uint8_t& high) const;

  struct Frame {
    enum class Kind : std::uint8_t { Value, Object, Array, String, Literal, Number };
    Kind kind = Kind::Value;
    std::uint8_t phase = 0;
    bool spaced = false;        // the one space after ':' or ',' was used
    bool key = false;           // String: an object's key
    std::uint8_t escape = 0;    // String: 1 after '\', 2..5 inside \uXXXX
    std::uint8_t pending = 0;   // String: UTF-8 continuation bytes still due
    std::uint8_t low = 0x80, high = 0xBF;  // String: the next continuation byte's range
    const SchemaNode* node = nullptr;
    std::int32_t index = 0;     // Object: next allowed property; Array: items so far
    std::int32_t length = 0;    // String: characters (keys: bytes); Literal: bytes matched
    std::uint64_t candidates = 0;  // key String: property indexes; Literal: literal indexes
  };

 private:
  using Stack = std::vector<Frame>;
  // Feeds `byte` to one stack; appends the stacks it becomes (none if it cannot take it).
  void feed_stack(Stack stack, unsigned char byte, std::vector<Stack>& out) const;
  void open_value(Stack stack, const SchemaNode* node, unsigned char byte, std::vector<Stack>& out) const;
  // The value on top of `stack` is finished: pop it and tell its container.
  static void finish_value(Stack& stack);
  static bool may_end(const Frame& frame);
  static std::string completion_of(const Stack& stack);

  std::vector<Stack> stacks_;  // the alternatives still alive; an empty Stack is a whole document
};

// The shortest JSON text of `node`'s values.
std::string shortest_value(const SchemaNode& node);

}  // namespace q3vl
