// libFuzzer target for what a model writes: arbitrary bytes as a reply through the reply parser
// (reasoning, answer, tool calls), under each combination of its options. The first byte picks the
// options and the size of the pieces the text streams in; the rest is the reply. Whatever the
// pieces, the result must be the one the whole text gives, every call must hold a name and a JSON
// object of arguments, and text never appears from nowhere. A crash, an exception or a sanitizer
// report is a bug (the parser throws nothing: a malformed call is answer text).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/reply_parser.h"

namespace {

struct Result {
  std::string reasoning, content;
  std::vector<q3vl::ParsedToolCall> calls;
  bool malformed = false;
};

Result parse(std::string_view text, q3vl::ReplyParser::Options options, std::size_t step) {
  q3vl::ReplyParser parser(options);
  std::vector<q3vl::ReplyPiece> pieces;
  for (std::size_t i = 0; i < text.size(); i += step) parser.push(text.substr(i, step), pieces);
  parser.finish(pieces);
  Result out;
  for (const q3vl::ReplyPiece& piece : pieces) {
    switch (piece.kind) {
      case q3vl::ReplyPiece::Kind::Reasoning: out.reasoning += piece.text; break;
      case q3vl::ReplyPiece::Kind::Content: out.content += piece.text; break;
      case q3vl::ReplyPiece::Kind::ToolCall: out.calls.push_back(piece.call); break;
    }
  }
  out.malformed = parser.malformed_tool_call();
  return out;
}

void require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1 || size > (1 << 16)) return 0;
  const std::uint8_t control = data[0];
  const q3vl::ReplyParser::Options options{.starts_in_reasoning = (control & 1) != 0,
                                           .detects_reasoning = (control & 2) != 0,
                                           .parses_tool_calls = (control & 4) != 0};
  const std::size_t step = 1 + (control >> 3);
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const Result whole = parse(text, options, text.size() + 1);
  const Result streamed = parse(text, options, step);
  require(streamed.reasoning == whole.reasoning && streamed.content == whole.content && streamed.malformed == whole.malformed);
  require(streamed.calls.size() == whole.calls.size());
  for (std::size_t i = 0; i < whole.calls.size(); ++i) {
    require(streamed.calls[i].name == whole.calls[i].name && streamed.calls[i].arguments == whole.calls[i].arguments);
    require(!whole.calls[i].name.empty());
    const nlohmann::ordered_json arguments = nlohmann::ordered_json::parse(whole.calls[i].arguments, nullptr, false);
    require(arguments.is_object());
  }
  // Nothing is invented: the parser only drops tags, whitespace and parsed calls.
  require(whole.reasoning.size() + whole.content.size() <= text.size());
  if (!options.starts_in_reasoning && !options.detects_reasoning && !options.parses_tool_calls) require(whole.content == text);
  return 0;
}
