#include "text/reply_parser.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "text/python_json.h"
#include "util/json_fields.h"

namespace q3vl {
namespace {

// Length of the longest end of `text` that begins `tag` (a tag cut by the stream).
std::size_t partial_tag_at_end(std::string_view text, std::string_view tag) {
  for (std::size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n) {
    if (tag.starts_with(text.substr(text.size() - n))) return n;
  }
  return 0;
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace

ReplyParser::ReplyParser(Options options)
    : options_(options),
      mode_(options.starts_in_reasoning ? Mode::Reasoning : options.detects_reasoning ? Mode::Start : Mode::Content),
      skip_newlines_(options.starts_in_reasoning) {}

void ReplyParser::push(std::string_view text, std::vector<ReplyPiece>& out) {
  pending_.append(text);
  advance(out, false);
}

void ReplyParser::finish(std::vector<ReplyPiece>& out) {
  advance(out, true);
  // Whitespace after the answer, or between and after tool calls, is no answer of its own.
  if (!any_call_ && !held_whitespace_.empty()) {
    if (!out.empty() && out.back().kind == ReplyPiece::Kind::Content) {
      out.back().text += held_whitespace_;
    } else {
      out.push_back({ReplyPiece::Kind::Content, std::move(held_whitespace_), {}});
    }
  }
  held_whitespace_.clear();
}

void ReplyParser::advance(std::vector<ReplyPiece>& out, bool at_end) {
  for (bool moved = true; moved;) {
    switch (mode_) {
      case Mode::Start: moved = step_start(out, at_end); break;
      case Mode::Reasoning: moved = step_reasoning(out, at_end); break;
      case Mode::Content: moved = step_content(out, at_end); break;
      case Mode::ToolCall: moved = step_tool_call(out, at_end); break;
    }
  }
}

// Each step consumes what it can of pending_ and returns true when it changed the mode.
bool ReplyParser::step_start(std::vector<ReplyPiece>&, bool at_end) {
  const std::string_view rest = std::string_view(pending_).substr(
      std::min(pending_.size(), static_cast<std::size_t>(std::find_if_not(pending_.begin(), pending_.end(), is_space) - pending_.begin())));
  if (rest.starts_with(kThinkOpen)) {
    pending_.erase(0, pending_.size() - rest.size() + kThinkOpen.size());
    mode_ = Mode::Reasoning;
    skip_newlines_ = true;
    return true;
  }
  if (!at_end && kThinkOpen.starts_with(rest)) return false;  // "<thi" may still become the tag
  mode_ = Mode::Content;
  return true;
}

bool ReplyParser::step_reasoning(std::vector<ReplyPiece>& out, bool at_end) {
  const std::size_t close = pending_.find(kThinkClose);
  if (close != std::string::npos) {
    std::string reasoning = pending_.substr(0, close);
    while (!reasoning.empty() && reasoning.back() == '\n') reasoning.pop_back();
    emit(ReplyPiece::Kind::Reasoning, std::move(reasoning), out);
    pending_.erase(0, close + kThinkClose.size());
    mode_ = Mode::Content;
    skip_newlines_ = true;
    return true;
  }
  if (at_end) {
    emit(ReplyPiece::Kind::Reasoning, std::move(pending_), out);
    pending_.clear();
    return false;
  }
  // Hold a tag cut by the stream, and newlines that end the reasoning if `</think>` follows them.
  std::size_t keep = pending_.size() - partial_tag_at_end(pending_, kThinkClose);
  while (keep > 0 && pending_[keep - 1] == '\n') --keep;
  emit(ReplyPiece::Kind::Reasoning, pending_.substr(0, keep), out);
  pending_.erase(0, keep);
  return false;
}

bool ReplyParser::step_content(std::vector<ReplyPiece>& out, bool at_end) {
  if (!options_.parses_tool_calls) {
    emit(ReplyPiece::Kind::Content, std::move(pending_), out);
    pending_.clear();
    return false;
  }
  const std::size_t open = pending_.find(kToolCallOpen);
  if (open != std::string::npos) {
    emit(ReplyPiece::Kind::Content, pending_.substr(0, open), out);
    whitespace_before_call_ = std::move(held_whitespace_);  // dropped, unless the call turns out malformed
    held_whitespace_.clear();
    pending_.erase(0, open + kToolCallOpen.size());
    mode_ = Mode::ToolCall;
    return true;
  }
  const std::size_t keep = at_end ? pending_.size() : pending_.size() - partial_tag_at_end(pending_, kToolCallOpen);
  emit(ReplyPiece::Kind::Content, pending_.substr(0, keep), out);
  pending_.erase(0, keep);
  return false;
}

bool ReplyParser::step_tool_call(std::vector<ReplyPiece>& out, bool at_end) {
  const std::size_t close = pending_.find(kToolCallClose);
  if (close != std::string::npos) {
    const std::string body = pending_.substr(0, close);
    pending_.erase(0, close + kToolCallClose.size());
    end_tool_call(body, out);
    mode_ = Mode::Content;
    return true;
  }
  if (at_end) {  // cut off (token limit) or never closed: the raw text is the answer
    malformed_ = true;
    std::string raw = whitespace_before_call_ + std::string(kToolCallOpen) + pending_;
    pending_.clear();
    mode_ = Mode::Content;
    emit(ReplyPiece::Kind::Content, std::move(raw), out);
  }
  return false;
}

void ReplyParser::end_tool_call(std::string_view body, std::vector<ReplyPiece>& out) {
  nlohmann::ordered_json call;
  try {
    call = parse_ordered_json_bounded(trim(body), "the tool call");
  } catch (const InvalidInput&) {
    call = nullptr;
  }
  const auto name = call.is_object() ? call.find("name") : call.end();
  const auto arguments = call.is_object() ? call.find("arguments") : call.end();
  const bool valid = call.is_object() && name != call.end() && name->is_string() && !name->get_ref<const std::string&>().empty() &&
                     (arguments == call.end() || arguments->is_object());
  if (!valid) {
    malformed_ = true;
    emit(ReplyPiece::Kind::Content, whitespace_before_call_ + std::string(kToolCallOpen) + std::string(body) + std::string(kToolCallClose), out);
    return;
  }
  ReplyPiece piece;
  piece.kind = ReplyPiece::Kind::ToolCall;
  piece.call.name = name->get<std::string>();
  piece.call.arguments = arguments == call.end() ? "{}" : dump_json_like_python(*arguments);
  held_whitespace_.clear();
  any_call_ = after_call_ = true;
  out.push_back(std::move(piece));
}

void ReplyParser::emit(ReplyPiece::Kind kind, std::string text, std::vector<ReplyPiece>& out) {
  if (skip_newlines_) {
    const std::size_t start = text.find_first_not_of('\n');
    if (start == std::string::npos) return;  // still only newlines: keep skipping
    text.erase(0, start);
    skip_newlines_ = false;
  }
  if (kind == ReplyPiece::Kind::Content && options_.parses_tool_calls) {
    // Whitespace is answer text only between answer text: not next to a call, not at the end.
    if (after_call_) {
      const std::size_t start = text.find_first_not_of(" \n\t\r");
      if (start == std::string::npos) return;
      text.erase(0, start);
    }
    std::size_t end = text.size();
    while (end > 0 && is_space(text[end - 1])) --end;
    if (end == 0) {
      held_whitespace_ += text;
      return;
    }
    std::string tail = text.substr(end);
    text.erase(end);
    text.insert(0, held_whitespace_);
    after_call_ = false;
    held_whitespace_ = std::move(tail);
  }
  if (text.empty()) return;
  if (!out.empty() && out.back().kind == kind && kind != ReplyPiece::Kind::ToolCall) {
    out.back().text += text;
  } else {
    out.push_back({kind, std::move(text), {}});
  }
}

}  // namespace q3vl
