#pragma once
// Splits a streamed reply into what OpenAI-style APIs return apart: the reasoning of a Thinking
// model (`<think>...</think>`, or everything before `</think>` when the prompt already opened the
// block), the answer, and tool calls written as Qwen's templates ask (`<tool_call>{"name": ...,
// "arguments": {...}}</tool_call>`). Text is classified as soon as it cannot be the start of one
// of those tags, so the pieces stream with at most a tag's length held back.
//
// A tool call that is not a JSON object with a string "name" (and object "arguments"), or one the
// reply leaves open, is not a call: its raw text becomes answer text and malformed_tool_call() says
// so; the reply is never lost.
#include <string>
#include <string_view>
#include <vector>

namespace q3vl {

// The tags Qwen's templates and models write around reasoning and tool calls (one definition for
// the parser, the constrained decoder and the prompt checks).
inline constexpr std::string_view kThinkOpen = "<think>";
inline constexpr std::string_view kThinkClose = "</think>";
inline constexpr std::string_view kToolCallOpen = "<tool_call>";
inline constexpr std::string_view kToolCallClose = "</tool_call>";

struct ParsedToolCall {
  std::string name;
  std::string arguments;  // JSON text of the arguments object, as Python's json.dumps writes it
};

struct ReplyPiece {
  enum class Kind { Reasoning, Content, ToolCall };
  Kind kind = Kind::Content;
  std::string text;     // Reasoning, Content
  ParsedToolCall call;  // ToolCall
};

class ReplyParser {
 public:
  struct Options {
    // The prompt ends inside a `<think>` block (Qwen3-VL Thinking's generation prompt): the reply
    // is reasoning until `</think>`.
    bool starts_in_reasoning = false;
    // The template knows `<think>`: a reply that begins with `<think>` (after whitespace) reasons.
    bool detects_reasoning = false;
    bool parses_tool_calls = false;
  };

  explicit ReplyParser(Options options);

  // Appends the pieces `text` completes to `out` (adjacent pieces of one kind may stay apart).
  void push(std::string_view text, std::vector<ReplyPiece>& out);
  // The end of the reply: what is still held back.
  void finish(std::vector<ReplyPiece>& out);

  bool malformed_tool_call() const { return malformed_; }

 private:
  enum class Mode { Start, Reasoning, Content, ToolCall };

  void advance(std::vector<ReplyPiece>& out, bool at_end);
  bool step_start(std::vector<ReplyPiece>& out, bool at_end);
  bool step_reasoning(std::vector<ReplyPiece>& out, bool at_end);
  bool step_content(std::vector<ReplyPiece>& out, bool at_end);
  bool step_tool_call(std::vector<ReplyPiece>& out, bool at_end);
  void emit(ReplyPiece::Kind kind, std::string text, std::vector<ReplyPiece>& out);
  void end_tool_call(std::string_view body, std::vector<ReplyPiece>& out);

  Options options_;
  Mode mode_;
  std::string pending_;           // received, not yet classified
  bool skip_newlines_ = false;    // drop newlines that open reasoning or follow `</think>`
  std::string held_whitespace_;   // answer whitespace that only counts if more answer follows
  std::string whitespace_before_call_;
  bool any_call_ = false;
  bool after_call_ = false;
  bool malformed_ = false;
};

}  // namespace q3vl
