#include "text/jinja/lexer.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "q3vl/error.h"

namespace q3vl::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

[[noreturn]] void fail(int line, const std::string& message) {
  throw InvalidInput("chat template line " + std::to_string(line) + ": " + message);
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(source) {}

  std::vector<Token> run() {
    bool strip_next_text = false;  // the previous tag ended with -%} / -}} / -#}
    bool line_starting = true;     // the previous tag's match ended with a newline (or none yet)
    while (pos_ < src_.size()) {
      std::size_t tag = find_tag(pos_);
      std::string text(src_.substr(pos_, (tag == std::string_view::npos ? src_.size() : tag) - pos_));
      const int text_line = line_;
      count_lines(text);
      if (strip_next_text) {
        const auto first = std::find_if_not(text.begin(), text.end(), is_space);
        text.erase(text.begin(), first);
      }
      if (tag == std::string_view::npos) {
        emit(Token::Type::Text, std::move(text), text_line);
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      const char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: spaces and tabs between the line start and a block or comment tag go.
        const std::size_t line_start = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if ((line_start > 0 || line_starting) &&
            text.find_first_not_of(" \t", line_start) == std::string::npos) {
          text.erase(line_start);
        }
      }
      emit(Token::Type::Text, std::move(text), text_line);
      pos_ = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      bool strip_after = false;
      if (kind == '#') {
        const std::size_t end = src_.find("#}", pos_);
        if (end == std::string_view::npos) fail(line_, "unterminated comment");
        strip_after = end > pos_ && src_[end - 1] == '-';
        count_lines(src_.substr(pos_, end + 2 - pos_));
        pos_ = end + 2;
      } else {
        strip_after = lex_tag(kind);
      }
      // trim_blocks: the first newline after a block or comment tag goes.
      line_starting = false;
      if (kind != '{' && !strip_after && pos_ < src_.size() && src_[pos_] == '\n') {
        ++pos_;
        ++line_;
        line_starting = true;
      }
      strip_next_text = strip_after;
      if (strip_after) {
        // -%} eats all following whitespace; the match then ends in a newline if the last one eaten was
        std::size_t p = pos_;
        while (p < src_.size() && is_space(src_[p])) ++p;
        line_starting = p > pos_ && src_[p - 1] == '\n';
      }
    }
    tokens_.push_back({Token::Type::End, "", line_});
    return std::move(tokens_);
  }

 private:
  std::size_t find_tag(std::size_t from) const {
    for (std::size_t p = src_.find('{', from); p != std::string_view::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) return p;
    }
    return std::string_view::npos;
  }

  void count_lines(std::string_view text) { line_ += static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

  void emit(Token::Type type, std::string text, int line) {
    if (type == Token::Type::Text && text.empty()) return;
    tokens_.push_back({type, std::move(text), line});
  }

  // Tokens of a {{ }} or {% %} tag, the opening delimiter already consumed. Returns whether the
  // tag closed with a '-'.
  bool lex_tag(char kind) {
    const bool variable = kind == '{';
    emit(variable ? Token::Type::VariableBegin : Token::Type::BlockBegin, variable ? "{{" : "{%", line_);
    const std::string_view close = variable ? "}}" : "%}";
    int depth = 0;  // brackets open inside the tag
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) {
        if (src_[pos_] == '\n') ++line_;
        ++pos_;
      }
      if (pos_ >= src_.size()) fail(line_, std::string("unclosed '") + (variable ? "{{" : "{%") + "'");
      const std::string_view rest = src_.substr(pos_);
      if (depth == 0 && rest.size() >= 3 && rest[0] == '-' && rest.substr(1, 2) == close) {
        pos_ += 3;
        emit(variable ? Token::Type::VariableEnd : Token::Type::BlockEnd, "", line_);
        return true;
      }
      if (depth == 0 && rest.substr(0, 2) == close) {
        pos_ += 2;
        emit(variable ? Token::Type::VariableEnd : Token::Type::BlockEnd, "", line_);
        return false;
      }
      const char c = rest[0];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        std::size_t n = 1;
        while (n < rest.size() && (std::isalnum(static_cast<unsigned char>(rest[n])) || rest[n] == '_')) ++n;
        emit(Token::Type::Name, std::string(rest.substr(0, n)), line_);
        pos_ += n;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        lex_number(rest);
      } else if (c == '\'' || c == '"') {
        lex_string(c);
      } else {
        static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op(1, c);
        for (const auto two : kTwo) {
          if (rest.substr(0, 2) == two) op = std::string(two);
        }
        if (op.size() == 1 && std::string_view("+-*/%~()[]{}.,:|=<>!").find(c) == std::string_view::npos) {
          fail(line_, std::string("unexpected character '") + c + "'");
        }
        if (c == '(' || c == '[' || c == '{') ++depth;
        if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
        emit(Token::Type::Operator, op, line_);
        pos_ += op.size();
      }
    }
  }

  void lex_number(std::string_view rest) {
    std::size_t n = 0;
    bool is_float = false;
    const auto digits = [&] {
      while (n < rest.size() && (std::isdigit(static_cast<unsigned char>(rest[n])) || rest[n] == '_')) ++n;
    };
    digits();
    if (n + 1 < rest.size() && rest[n] == '.' && std::isdigit(static_cast<unsigned char>(rest[n + 1]))) {
      is_float = true;
      ++n;
      digits();
    }
    if (n < rest.size() && (rest[n] == 'e' || rest[n] == 'E')) {
      std::size_t m = n + 1;
      if (m < rest.size() && (rest[m] == '+' || rest[m] == '-')) ++m;
      if (m < rest.size() && std::isdigit(static_cast<unsigned char>(rest[m]))) {
        is_float = true;
        n = m;
        digits();
      }
    }
    std::string text;
    for (const char ch : rest.substr(0, n)) {
      if (ch != '_') text += ch;
    }
    emit(is_float ? Token::Type::Float : Token::Type::Integer, text, line_);
    pos_ += n;
  }

  void lex_string(char quote) {
    const int start_line = line_;
    std::string out;
    ++pos_;
    while (true) {
      if (pos_ >= src_.size()) fail(start_line, "unterminated string");
      const char c = src_[pos_++];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= src_.size()) fail(start_line, "unterminated string");
      const char e = src_[pos_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case 'a': out += '\a'; break;
        case '0': out += '\0'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\n': ++line_; break;
        case 'x':
        case 'u':
        case 'U': {
          const std::size_t width = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          if (pos_ + width > src_.size()) fail(start_line, "truncated escape in string");
          const std::string hex(src_.substr(pos_, width));
          if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
            fail(start_line, "bad \\" + std::string(1, e) + " escape in string");
          }
          append_utf8(out, static_cast<std::uint32_t>(std::stoul(hex, nullptr, 16)));
          pos_ += width;
          break;
        }
        default:  // Python keeps unknown escapes as written
          out += '\\';
          out += e;
      }
    }
    emit(Token::Type::String, std::move(out), start_line);
  }

  std::string_view src_;
  std::size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

}  // namespace q3vl::jinja
