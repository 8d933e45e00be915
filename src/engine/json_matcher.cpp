#include "engine/json_matcher.h"

#include <algorithm>

namespace q3vl {
namespace {

using Frame = JsonMatcher::Frame;
using Kind = SchemaNode::Kind;

// Schemas of values no schema describes: inside `{}`-typed or json_object documents.
struct BuiltinNodes {
  SchemaNode any, object, array, string, number, boolean, null;
  BuiltinNodes() {
    object.kind = Kind::Object;
    object.free_keys = true;
    array.kind = Kind::Array;
    array.items = &any;
    string.kind = Kind::String;
    number.kind = Kind::Number;
    boolean.kind = Kind::Literals;
    boolean.literals = {"true", "false"};
    null.kind = Kind::Literals;
    null.literals = {"null"};
  }
};

const BuiltinNodes& builtins() {
  static const BuiltinNodes nodes;
  return nodes;
}

enum ObjectPhase : std::uint8_t { kAfterOpen, kInKey, kAfterKey, kAfterColon, kInValue, kAfterValue, kAfterComma };
enum ArrayPhase : std::uint8_t { kArrayOpen, kArrayInValue, kArrayAfterValue, kArrayAfterComma };

bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Declared properties a key may name next: from `index` up to the first required one.
std::uint64_t key_candidates(const SchemaNode& node, std::int32_t index) {
  std::uint64_t bits = 0;
  for (std::size_t k = static_cast<std::size_t>(index); k < node.properties.size(); ++k) {
    bits |= std::uint64_t{1} << k;
    if (node.properties[k].required) break;
  }
  return bits;
}

bool required_left(const SchemaNode& node, std::int32_t index) {
  for (std::size_t k = static_cast<std::size_t>(index); k < node.properties.size(); ++k) {
    if (node.properties[k].required) return true;
  }
  return false;
}

std::string property_text(const SchemaNode::Property& p) {
  std::string out = "\"";
  out += p.name;
  out += "\":";
  out += shortest_value(*p.schema);
  return out;
}

// The required properties from `index` on, each after a comma.
std::string remaining_required(const SchemaNode& node, std::int32_t index) {
  std::string out;
  for (std::size_t k = static_cast<std::size_t>(index); k < node.properties.size(); ++k) {
    if (!node.properties[k].required) continue;
    out += ',';
    out += property_text(node.properties[k]);
  }
  return out;
}

}  // namespace

std::string shortest_value(const SchemaNode& node) {
  switch (node.kind) {
    case Kind::Any: return "0";
    case Kind::Number:
    case Kind::Integer: return "0";
    case Kind::Boolean: return "true";
    case Kind::Null: return "null";
    case Kind::String: {
      std::string out(static_cast<std::size_t>(node.min_length) + 2, 'a');
      out.front() = out.back() = '"';
      return out;
    }
    case Kind::Literals:
      return *std::min_element(node.literals.begin(), node.literals.end(), [](const auto& a, const auto& b) { return a.size() < b.size(); });
    case Kind::AnyOf: {
      std::string best;
      for (const SchemaNode* alternative : node.alternatives) {
        std::string text = shortest_value(*alternative);
        if (best.empty() || text.size() < best.size()) best = std::move(text);
      }
      return best;
    }
    case Kind::Array: {
      std::string out = "[";
      for (std::int64_t i = 0; i < node.min_items; ++i) {
        if (i > 0) out += ',';
        out += shortest_value(*node.items);
      }
      out += ']';
      return out;
    }
    case Kind::Object: {
      const std::string rest = remaining_required(node, 0);
      std::string out = "{";
      if (!rest.empty()) out.append(rest, 1);
      out += '}';
      return out;
    }
  }
  return "0";
}

JsonMatcher::JsonMatcher(const SchemaNode& root) {
  Frame start;
  start.node = &root;
  stacks_.push_back({start});
}

bool JsonMatcher::may_end(const Frame& frame) {
  if (frame.kind == Frame::Kind::Number) return frame.phase == 2 || frame.phase == 3 || frame.phase == 5 || frame.phase == 8;
  if (frame.kind == Frame::Kind::Literal) {
    for (std::size_t k = 0; k < frame.node->literals.size(); ++k) {
      if ((frame.candidates >> k & 1) && std::cmp_equal(frame.node->literals[k].size(), frame.length)) return true;
    }
  }
  return false;
}

void JsonMatcher::finish_value(Stack& stack) {
  stack.pop_back();
  if (stack.empty()) return;  // the document is whole
  Frame& parent = stack.back();
  if (parent.kind == Frame::Kind::Object) parent.phase = kAfterValue;
  if (parent.kind == Frame::Kind::Array) {
    parent.phase = kArrayAfterValue;
    ++parent.index;
  }
}

void JsonMatcher::open_value(Stack stack, const SchemaNode* node, unsigned char byte, std::vector<Stack>& out) const {
  const BuiltinNodes& b = builtins();
  Frame frame;
  frame.node = node;
  switch (node->kind) {
    case Kind::AnyOf:
      for (const SchemaNode* alternative : node->alternatives) open_value(stack, alternative, byte, out);
      return;
    case Kind::Any:
      if (byte == '{') return open_value(std::move(stack), &b.object, byte, out);
      if (byte == '[') return open_value(std::move(stack), &b.array, byte, out);
      if (byte == '"') return open_value(std::move(stack), &b.string, byte, out);
      if (byte == 't' || byte == 'f') return open_value(std::move(stack), &b.boolean, byte, out);
      if (byte == 'n') return open_value(std::move(stack), &b.null, byte, out);
      return open_value(std::move(stack), &b.number, byte, out);
    case Kind::Object:
      if (byte != '{') return;
      frame.kind = Frame::Kind::Object;
      stack.push_back(frame);
      out.push_back(std::move(stack));
      return;
    case Kind::Array:
      if (byte != '[') return;
      frame.kind = Frame::Kind::Array;
      stack.push_back(frame);
      out.push_back(std::move(stack));
      return;
    case Kind::String:
      if (byte != '"') return;
      frame.kind = Frame::Kind::String;
      stack.push_back(frame);
      out.push_back(std::move(stack));
      return;
    case Kind::Number:
    case Kind::Integer:
      if (byte != '-' && !is_digit(byte)) return;
      frame.kind = Frame::Kind::Number;
      stack.push_back(frame);
      return feed_stack(std::move(stack), byte, out);
    case Kind::Boolean:
      return open_value(std::move(stack), &b.boolean, byte, out);
    case Kind::Null:
      return open_value(std::move(stack), &b.null, byte, out);
    case Kind::Literals:
      frame.kind = Frame::Kind::Literal;
      frame.candidates = node->literals.size() >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << node->literals.size()) - 1;
      stack.push_back(frame);
      return feed_stack(std::move(stack), byte, out);
  }
}

void JsonMatcher::feed_stack(Stack stack, unsigned char byte, std::vector<Stack>& out) const {
  if (stack.empty()) return;  // a whole document takes nothing more
  Frame& top = stack.back();
  // A number or literal that could end here ends when the byte cannot continue it.
  auto end_and_refeed = [&] {
    if (!may_end(top)) return;
    finish_value(stack);
    feed_stack(std::move(stack), byte, out);
  };
  switch (top.kind) {
    case Frame::Kind::Value: {
      const SchemaNode* node = top.node;
      stack.pop_back();
      return open_value(std::move(stack), node, byte, out);
    }
    case Frame::Kind::Literal: {
      std::uint64_t next = 0;
      for (std::size_t k = 0; k < top.node->literals.size() && k < 64; ++k) {
        const std::string& text = top.node->literals[k];
        if ((top.candidates >> k & 1) && std::cmp_greater(text.size(), top.length) &&
            static_cast<unsigned char>(text[static_cast<std::size_t>(top.length)]) == byte) {
          next |= std::uint64_t{1} << k;
        }
      }
      if (next == 0) return end_and_refeed();
      top.candidates = next;
      ++top.length;
      bool longer = false;
      for (std::size_t k = 0; k < top.node->literals.size() && k < 64; ++k) {
        if ((next >> k & 1) && std::cmp_greater(top.node->literals[k].size(), top.length)) longer = true;
      }
      if (!longer) finish_value(stack);  // no other literal continues: done
      out.push_back(std::move(stack));
      return;
    }
    case Frame::Kind::Number: {
      const bool integer = top.node->kind == Kind::Integer;
      std::uint8_t next = 255;
      switch (top.phase) {
        case 0: next = byte == '-' ? 1 : byte == '0' ? 2 : is_digit(byte) ? 3 : 255; break;
        case 1: next = byte == '0' ? 2 : is_digit(byte) ? 3 : 255; break;
        case 2:
        case 3:
          if (top.phase == 3 && is_digit(byte)) next = 3;
          else if (!integer && byte == '.') next = 4;
          else if (!integer && (byte == 'e' || byte == 'E')) next = 6;
          break;
        case 4: next = is_digit(byte) ? 5 : 255; break;
        case 5: next = is_digit(byte) ? 5 : (byte == 'e' || byte == 'E') ? 6 : 255; break;
        case 6: next = (byte == '+' || byte == '-') ? 7 : is_digit(byte) ? 8 : 255; break;
        case 7:
        case 8: next = is_digit(byte) ? 8 : 255; break;
        default: break;
      }
      if (next == 255) return end_and_refeed();
      top.phase = next;
      out.push_back(std::move(stack));
      return;
    }
    case Frame::Kind::String: {
      const bool free = !top.key || top.node->free_keys;
      if (!free) {
        // A declared key: its bytes must spell one of the candidate names (plain UTF-8, no escapes).
        if (byte == '"') {
          for (std::size_t k = 0; k < top.node->properties.size(); ++k) {
            if ((top.candidates >> k & 1) && std::cmp_equal(top.node->properties[k].name.size(), top.length)) {
              stack.pop_back();
              Frame& object = stack.back();
              object.phase = kAfterKey;
              object.length = static_cast<std::int32_t>(k);
              object.index = static_cast<std::int32_t>(k + 1);
              out.push_back(std::move(stack));
              return;
            }
          }
          return;
        }
        std::uint64_t next = 0;
        for (std::size_t k = 0; k < top.node->properties.size(); ++k) {
          const std::string& name = top.node->properties[k].name;
          if ((top.candidates >> k & 1) && std::cmp_greater(name.size(), top.length) &&
              static_cast<unsigned char>(name[static_cast<std::size_t>(top.length)]) == byte) {
            next |= std::uint64_t{1} << k;
          }
        }
        if (next == 0) return;
        top.candidates = next;
        ++top.length;
        out.push_back(std::move(stack));
        return;
      }
      if (top.escape == 1) {
        if (byte == 'u') {
          top.escape = 2;
        } else if (byte == '"' || byte == '\\' || byte == '/' || byte == 'b' || byte == 'f' || byte == 'n' || byte == 'r' || byte == 't') {
          top.escape = 0;
          ++top.length;
        } else {
          return;
        }
        out.push_back(std::move(stack));
        return;
      }
      if (top.escape >= 2) {
        if (!is_hex(byte)) return;
        if (++top.escape == 6) {
          top.escape = 0;
          ++top.length;
        }
        out.push_back(std::move(stack));
        return;
      }
      if (top.pending > 0) {
        if (byte < top.low || byte > top.high) return;
        --top.pending;
        top.low = 0x80;
        top.high = 0xBF;
        out.push_back(std::move(stack));
        return;
      }
      if (byte == '"') {
        if (top.key) {  // a free object's key: its value comes next
          stack.pop_back();
          stack.back().phase = kAfterKey;
        } else {
          if (top.length < top.node->min_length) return;
          finish_value(stack);
        }
        out.push_back(std::move(stack));
        return;
      }
      if (byte < 0x20) return;
      const bool room = top.key || top.node->max_length < 0 || top.length < top.node->max_length;
      if (!room) return;
      if (byte == '\\') {
        top.escape = 1;
        out.push_back(std::move(stack));
        return;
      }
      std::uint8_t continuation = 0, low = 0x80, high = 0xBF;
      if (byte >= 0x80) {
        if (byte >= 0xC2 && byte <= 0xDF) continuation = 1;
        else if (byte == 0xE0) continuation = 2, low = 0xA0;
        else if (byte >= 0xE1 && byte <= 0xEC) continuation = 2;
        else if (byte == 0xED) continuation = 2, high = 0x9F;
        else if (byte >= 0xEE && byte <= 0xEF) continuation = 2;
        else if (byte == 0xF0) continuation = 3, low = 0x90;
        else if (byte >= 0xF1 && byte <= 0xF3) continuation = 3;
        else if (byte == 0xF4) continuation = 3, high = 0x8F;
        else return;
      }
      ++top.length;  // one character, counted at its first byte
      top.pending = continuation;
      top.low = low;
      top.high = high;
      out.push_back(std::move(stack));
      return;
    }
    case Frame::Kind::Object: {
      const SchemaNode& node = *top.node;
      switch (top.phase) {
        case kAfterComma:
        case kAfterOpen:
          if (top.phase == kAfterComma && byte == ' ' && !top.spaced) {
            top.spaced = true;
            out.push_back(std::move(stack));
            return;
          }
          if (byte == '}' && top.phase == kAfterOpen) {
            if (required_left(node, top.index)) return;
            finish_value(stack);
            out.push_back(std::move(stack));
            return;
          }
          if (byte == '"') {
            Frame key;
            key.kind = Frame::Kind::String;
            key.key = true;
            key.node = &node;
            if (!node.free_keys) {
              key.candidates = key_candidates(node, top.index);
              if (key.candidates == 0) return;
            }
            top.phase = kInKey;
            top.spaced = false;
            stack.push_back(key);
            out.push_back(std::move(stack));
          }
          return;
        case kAfterKey:
          if (byte != ':') return;
          top.phase = kAfterColon;
          top.spaced = false;
          out.push_back(std::move(stack));
          return;
        case kAfterColon: {
          if (byte == ' ' && !top.spaced) {
            top.spaced = true;
            out.push_back(std::move(stack));
            return;
          }
          const SchemaNode* value = node.free_keys ? &builtins().any : node.properties[static_cast<std::size_t>(top.length)].schema;
          top.phase = kInValue;
          return open_value(std::move(stack), value, byte, out);
        }
        case kAfterValue:
          if (byte == ',') {
            if (!node.free_keys && std::cmp_greater_equal(top.index, node.properties.size())) return;
            top.phase = kAfterComma;
            top.spaced = false;
            out.push_back(std::move(stack));
          } else if (byte == '}') {
            if (required_left(node, top.index)) return;
            finish_value(stack);
            out.push_back(std::move(stack));
          }
          return;
        default: return;
      }
    }
    case Frame::Kind::Array: {
      const SchemaNode& node = *top.node;
      switch (top.phase) {
        case kArrayOpen:
        case kArrayAfterComma:
          if (top.phase == kArrayAfterComma && byte == ' ' && !top.spaced) {
            top.spaced = true;
            out.push_back(std::move(stack));
            return;
          }
          if (byte == ']' && top.phase == kArrayOpen) {
            if (node.min_items > 0) return;
            finish_value(stack);
            out.push_back(std::move(stack));
            return;
          }
          if (top.phase == kArrayOpen && node.max_items == 0) return;
          top.phase = kArrayInValue;
          return open_value(std::move(stack), node.items, byte, out);
        case kArrayAfterValue:
          if (byte == ',') {
            if (node.max_items >= 0 && top.index >= node.max_items) return;
            top.phase = kArrayAfterComma;
            top.spaced = false;
            out.push_back(std::move(stack));
          } else if (byte == ']') {
            if (top.index < node.min_items) return;
            finish_value(stack);
            out.push_back(std::move(stack));
          }
          return;
        default: return;
      }
    }
  }
}

bool JsonMatcher::feed(unsigned char byte) {
  // One alternative (the usual case): fed in place when it stays one.
  if (stacks_.size() == 1 && !stacks_.front().empty()) {
    Stack& stack = stacks_.front();
    const Frame& top = stack.back();
    if (top.kind == Frame::Kind::String && !top.key && top.escape == 0 && top.pending == 0 && byte >= 0x20 && byte < 0x80 &&
        byte != '"' && byte != '\\' && (top.node->max_length < 0 || top.length < top.node->max_length)) {
      ++stack.back().length;  // plain ASCII inside a free string
      return true;
    }
  }
  std::vector<Stack> next;
  for (const Stack& stack : stacks_) feed_stack(stack, byte, next);
  if (next.empty()) return false;
  if (next.size() > 64) next.resize(64);  // anyOf alternatives that never part: keep a bounded number
  stacks_ = std::move(next);
  return true;
}

bool JsonMatcher::feed(const std::string& bytes) {
  JsonMatcher copy = *this;
  for (char c : bytes) {
    if (!copy.feed(static_cast<unsigned char>(c))) return false;
  }
  *this = std::move(copy);
  return true;
}

bool JsonMatcher::complete() const {
  return std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty() || (s.size() == 1 && may_end(s.back())); });
}

bool JsonMatcher::in_string(std::int64_t& room, int& pending, std::uint8_t& low, std::uint8_t& high) const {
  if (stacks_.size() != 1 || stacks_.front().empty()) return false;
  const Frame& top = stacks_.front().back();
  if (top.kind != Frame::Kind::String || top.key || top.escape != 0) return false;
  // A character cut short is counted already: the room left is for what follows it.
  room = top.node->max_length < 0 ? -1 : top.node->max_length - top.length;
  pending = top.pending;
  low = top.low;
  high = top.high;
  return true;
}

std::string JsonMatcher::completion_of(const Stack& original) {
  Stack stack = original;
  std::string out;
  while (!stack.empty()) {
    Frame& top = stack.back();
    switch (top.kind) {
      case Frame::Kind::Value:
        out += shortest_value(*top.node);
        stack.pop_back();
        continue;
      case Frame::Kind::Literal: {
        std::string best;
        bool found = false;
        for (std::size_t k = 0; k < top.node->literals.size() && k < 64; ++k) {
          if (!(top.candidates >> k & 1)) continue;
          std::string rest = top.node->literals[k].substr(static_cast<std::size_t>(top.length));
          if (!found || rest.size() < best.size()) best = std::move(rest);
          found = true;
        }
        out += best;
        finish_value(stack);
        continue;
      }
      case Frame::Kind::Number:
        if (top.phase == 1 || top.phase == 4 || top.phase == 6 || top.phase == 7) out += "0";
        finish_value(stack);
        continue;
      case Frame::Kind::String: {
        if (top.escape == 1) out += "n";
        if (top.escape >= 2) out += std::string(static_cast<std::size_t>(6 - top.escape), '0');
        for (std::uint8_t i = 0; i < top.pending; ++i) out += static_cast<char>(i == 0 ? top.low : 0x80);
        const bool free = !top.key || top.node->free_keys;
        if (free) {
          const std::int64_t counted = top.length + (top.escape != 0 ? 1 : 0);
          if (!top.key && counted < top.node->min_length) out += std::string(static_cast<std::size_t>(top.node->min_length - counted), 'a');
          out += "\"";
          if (top.key) {
            stack.pop_back();
            stack.back().phase = kAfterKey;
          } else {
            finish_value(stack);
          }
          continue;
        }
        std::size_t chosen = 0;
        bool found = false;
        for (std::size_t k = 0; k < top.node->properties.size(); ++k) {
          if (!(top.candidates >> k & 1)) continue;
          if (!found || top.node->properties[k].name.size() < top.node->properties[chosen].name.size()) chosen = k;
          found = true;
        }
        out.append(top.node->properties[chosen].name, static_cast<std::size_t>(top.length));
        out += '"';
        stack.pop_back();
        stack.back().phase = kAfterKey;
        stack.back().length = static_cast<std::int32_t>(chosen);
        stack.back().index = static_cast<std::int32_t>(chosen + 1);
        continue;
      }
      case Frame::Kind::Object: {
        const SchemaNode& node = *top.node;
        const bool keyed = top.phase == kAfterKey || top.phase == kAfterColon;
        const SchemaNode& value = node.free_keys || !keyed ? builtins().any : *node.properties[static_cast<std::size_t>(top.length)].schema;
        switch (top.phase) {
          case kAfterOpen: {
            const std::string rest = remaining_required(node, top.index);
            if (!rest.empty()) out.append(rest, 1);
            out += '}';
            break;
          }
          case kAfterKey:
          case kAfterColon:
            if (top.phase == kAfterKey) out += ':';
            out += shortest_value(value);
            out += remaining_required(node, top.index);
            out += '}';
            break;
          case kInValue:
          case kAfterValue:
            out += remaining_required(node, top.index);
            out += '}';
            break;
          case kAfterComma: {
            if (node.free_keys) {
              out += "\"\":0}";
              break;
            }
            std::size_t k = static_cast<std::size_t>(top.index);
            for (std::size_t r = k; r < node.properties.size(); ++r) {
              if (node.properties[r].required) {
                k = r;
                break;
              }
            }
            out += property_text(node.properties[k]);
            out += remaining_required(node, static_cast<std::int32_t>(k + 1));
            out += '}';
            break;
          }
          default: break;
        }
        finish_value(stack);
        continue;
      }
      case Frame::Kind::Array: {
        const SchemaNode& node = *top.node;
        const std::string item = shortest_value(*node.items);
        std::int64_t have = top.index;
        if (top.phase == kArrayOpen) {
          for (std::int64_t i = 0; i < node.min_items; ++i) {
            if (i > 0) out += ',';
            out += item;
          }
        } else {
          if (top.phase == kArrayAfterComma) {
            out += item;
            ++have;
          }
          for (; have < node.min_items; ++have) {
            out += ',';
            out += item;
          }
        }
        out += "]";
        finish_value(stack);
        continue;
      }
    }
  }
  return out;
}

std::string JsonMatcher::shortest_completion() const {
  if (complete()) return "";
  std::string best;
  bool found = false;
  for (const Stack& stack : stacks_) {
    std::string text = completion_of(stack);
    if (!found || text.size() < best.size()) best = std::move(text);
    found = true;
  }
  return best;
}

}  // namespace q3vl
