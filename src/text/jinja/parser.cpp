#include "text/jinja/parser.h"

#include <algorithm>
#include <cstdlib>
#include <initializer_list>

#include "q3vl/error.h"
#include "text/jinja/lexer.h"

namespace q3vl::jinja {
namespace {

using T = Token::Type;

ExprPtr make(Expr::Kind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Program run() {
    Program program;
    std::string end = parse_body(program.body, {});
    if (!end.empty()) fail("unexpected '" + end + "'");
    return program;
  }

 private:
  const Token& current() const { return tokens_[pos_]; }
  const Token& peek(std::size_t ahead = 1) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  [[noreturn]] void fail(const std::string& message) const {
    throw InvalidInput("chat template line " + std::to_string(current().line) + ": " + message);
  }
  bool is_op(std::string_view op) const { return current().type == T::Operator && current().text == op; }
  bool is_name(std::string_view name) const { return current().type == T::Name && current().text == name; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }
  std::string describe() const {
    switch (current().type) {
      case T::End: return "end of template";
      case T::BlockEnd: return "'%}'";
      case T::VariableEnd: return "'}}'";
      case T::Text: return "text";
      default: return "'" + current().text + "'";
    }
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail("expected '" + std::string(op) + "', found " + describe());
  }
  std::string expect_name() {
    if (current().type != T::Name) fail("expected a name, found " + describe());
    std::string name = current().text;
    advance();
    return name;
  }
  void expect_block_end() {
    if (current().type != T::BlockEnd) fail("expected '%}', found " + describe());
    advance();
  }

  // Statements until a {% name %} with name in `ends` (consumed up to the name); returns that name,
  // or "" at the end of the template.
  std::string parse_body(Body& body, std::initializer_list<std::string_view> ends) {
    while (true) {
      const Token& token = current();
      if (token.type == T::End) {
        if (ends.size() != 0) fail("unexpected end of template, expected '" + std::string(*ends.begin()) + "'");
        return "";
      }
      if (token.type == T::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->line = token.line;
        s->text = token.text;
        body.push_back(std::move(s));
        advance();
      } else if (token.type == T::VariableBegin) {
        advance();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Output;
        s->line = token.line;
        s->expr = parse_tuple(true);
        if (current().type != T::VariableEnd) fail("expected '}}', found " + describe());
        advance();
        body.push_back(std::move(s));
      } else if (token.type == T::BlockBegin) {
        advance();
        if (current().type != T::Name) fail("expected a tag name, found " + describe());
        const std::string name = current().text;
        if (std::find(ends.begin(), ends.end(), name) != ends.end()) {
          advance();
          return name;
        }
        body.push_back(parse_statement());
      } else {
        fail("unexpected " + describe());
      }
    }
  }

  StmtPtr parse_statement() {
    const Nesting nesting(*this);
    auto s = std::make_unique<Stmt>();
    s->line = current().line;
    const std::string tag = expect_name();
    if (tag == "if") {
      s->kind = Stmt::Kind::If;
      ExprPtr condition = parse_tuple(false);
      while (true) {
        expect_block_end();
        Body body;
        const std::string end = parse_body(body, {"endif", "elif", "else"});
        s->branches.emplace_back(std::move(condition), std::move(body));
        if (end == "endif") break;
        if (end == "else") {
          expect_block_end();
          Body else_body;
          parse_body(else_body, {"endif"});
          s->branches.emplace_back(nullptr, std::move(else_body));
          break;
        }
        condition = parse_tuple(false);
      }
      expect_block_end();
    } else if (tag == "for") {
      s->kind = Stmt::Kind::For;
      s->targets = parse_targets();
      if (!skip_name("in")) fail("expected 'in' in for loop, found " + describe());
      s->expr = parse_tuple(false);
      if (is_name("recursive")) fail("unsupported: recursive for loops");
      if (skip_name("if")) s->condition = parse_expression(false);
      expect_block_end();
      const std::string end = parse_body(s->body, {"endfor", "else"});
      if (end == "else") {
        expect_block_end();
        parse_body(s->else_body, {"endfor"});
      }
      expect_block_end();
    } else if (tag == "set") {
      if (current().type == T::Name && peek().type == T::Operator && peek().text == ".") {
        s->kind = Stmt::Kind::Set;
        s->text = expect_name();
        advance();
        s->attribute = expect_name();
      } else {
        s->targets = parse_targets();
        s->text = s->targets.front();
      }
      if (skip_op("=")) {
        s->kind = Stmt::Kind::Set;
        s->expr = parse_tuple(true);
        expect_block_end();
      } else {
        if (!s->attribute.empty() || s->targets.size() != 1) fail("expected '=' after set target");
        if (is_op("|")) fail("unsupported: filtered set blocks ({% set x | filter %})");
        s->kind = Stmt::Kind::SetBlock;
        expect_block_end();
        parse_body(s->body, {"endset"});
        expect_block_end();
      }
    } else if (tag == "macro") {
      s->kind = Stmt::Kind::Macro;
      s->text = expect_name();
      parse_parameters(s->parameters);
      expect_block_end();
      parse_body(s->body, {"endmacro"});
      if (current().type == T::Name) advance();  // {% endmacro name %}
      expect_block_end();
    } else if (tag == "call") {
      s->kind = Stmt::Kind::CallBlock;
      if (is_op("(")) parse_parameters(s->parameters);
      s->expr = parse_expression(true);
      if (s->expr->kind != Expr::Kind::Call) fail("expected a macro call in call block");
      expect_block_end();
      parse_body(s->body, {"endcall"});
      expect_block_end();
    } else if (tag == "break" || tag == "continue") {
      s->kind = tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue;
      expect_block_end();
    } else if (tag == "generation") {  // transformers' extension: marks assistant text, renders as is
      s->kind = Stmt::Kind::Generation;
      expect_block_end();
      parse_body(s->body, {"endgeneration"});
      expect_block_end();
    } else {
      --pos_;
      fail("unsupported tag '" + tag + "'");
    }
    return s;
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    const bool parenthesized = skip_op("(");
    names.push_back(expect_name());
    while (skip_op(",")) {
      if (current().type != T::Name || is_name("in")) break;
      names.push_back(expect_name());
    }
    if (parenthesized) expect_op(")");
    return names;
  }

  void parse_parameters(std::vector<std::pair<std::string, ExprPtr>>& parameters) {
    expect_op("(");
    while (!is_op(")")) {
      if (!parameters.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string name = expect_name();
      ExprPtr default_value;
      if (skip_op("=")) default_value = parse_expression(true);
      parameters.emplace_back(std::move(name), std::move(default_value));
    }
    expect_op(")");
  }

  // An expression or an implicit tuple (a, b).
  ExprPtr parse_tuple(bool with_condition, bool explicit_parentheses = false) {
    const int line = current().line;
    std::vector<ExprPtr> items;
    bool saw_comma = false;
    while (true) {
      if (!items.empty()) {
        if (!skip_op(",")) break;
        saw_comma = true;
      }
      if (current().type == T::VariableEnd || current().type == T::BlockEnd || is_op(")") ||
          (!items.empty() && (is_name("if") || is_name("in") || is_op("=")))) {
        break;
      }
      items.push_back(parse_expression(with_condition));
    }
    if (!saw_comma) {
      if (items.empty()) {
        if (!explicit_parentheses) fail("expected an expression, found " + describe());
        auto e = make(Expr::Kind::Tuple, line);
        return e;
      }
      return std::move(items.front());
    }
    auto e = make(Expr::Kind::Tuple, line);
    e->children = std::move(items);
    return e;
  }

  // Nesting (brackets, unary operators, blocks) is bounded so that recursion cannot exhaust the stack.
  struct Nesting {
    Parser& parser;
    explicit Nesting(Parser& p) : parser(p) {
      if (++parser.depth_ > 200) parser.fail("template nested too deeply (over 200 levels)");
    }
    ~Nesting() { --parser.depth_; }
  };

  ExprPtr parse_expression(bool with_condition) {
    const Nesting nesting(*this);
    if (!with_condition) return parse_or();
    ExprPtr node = parse_or();
    while (is_name("if")) {
      const int line = current().line;
      advance();
      auto e = make(Expr::Kind::Conditional, line);
      e->children.push_back(parse_or());
      e->children.push_back(std::move(node));
      e->children.push_back(skip_name("else") ? parse_expression(true) : nullptr);
      node = std::move(e);
    }
    return node;
  }

  ExprPtr binary(std::string op, ExprPtr left, ExprPtr right, int line) {
    auto e = make(Expr::Kind::Binary, line);
    e->name = std::move(op);
    e->children.push_back(std::move(left));
    e->children.push_back(std::move(right));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr node = parse_and();
    while (is_name("or")) {
      const int line = current().line;
      advance();
      node = binary("or", std::move(node), parse_and(), line);
    }
    return node;
  }
  ExprPtr parse_and() {
    ExprPtr node = parse_not();
    while (is_name("and")) {
      const int line = current().line;
      advance();
      node = binary("and", std::move(node), parse_not(), line);
    }
    return node;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      auto e = make(Expr::Kind::Unary, current().line);
      advance();
      e->name = "not";
      e->children.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    const int line = current().line;
    ExprPtr first = parse_math1();
    std::unique_ptr<Expr> e;
    while (true) {
      std::string op;
      if (current().type == T::Operator &&
          (is_op("==") || is_op("!=") || is_op("<") || is_op("<=") || is_op(">") || is_op(">="))) {
        op = current().text;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().type == T::Name && peek().text == "in") {
        op = "not in";
        advance();
        advance();
      } else {
        break;
      }
      if (!e) {
        e = make(Expr::Kind::Compare, line);
        e->children.push_back(std::move(first));
      }
      e->ops.push_back(op);
      e->children.push_back(parse_math1());
    }
    return e ? std::move(e) : std::move(first);
  }
  ExprPtr parse_math1() {
    ExprPtr node = parse_concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = current().text;
      const int line = current().line;
      advance();
      node = binary(op, std::move(node), parse_concat(), line);
    }
    return node;
  }
  ExprPtr parse_concat() {
    ExprPtr node = parse_math2();
    while (is_op("~")) {
      const int line = current().line;
      advance();
      node = binary("~", std::move(node), parse_math2(), line);
    }
    return node;
  }
  ExprPtr parse_math2() {
    ExprPtr node = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = current().text;
      const int line = current().line;
      advance();
      node = binary(op, std::move(node), parse_pow(), line);
    }
    return node;
  }
  ExprPtr parse_pow() {
    ExprPtr node = parse_unary(true);
    while (is_op("**")) {
      const int line = current().line;
      advance();
      node = binary("**", std::move(node), parse_unary(true), line);
    }
    return node;
  }
  ExprPtr parse_unary(bool with_filter) {
    const Nesting nesting(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      auto e = make(Expr::Kind::Unary, current().line);
      e->name = current().text;
      advance();
      e->children.push_back(parse_unary(false));
      node = std::move(e);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& token = current();
    auto literal = [&](Value v) {
      auto e = make(Expr::Kind::Literal, token.line);
      e->value = std::move(v);
      return e;
    };
    switch (token.type) {
      case T::Name: {
        const std::string& n = token.text;
        ExprPtr e;
        if (n == "true" || n == "True") e = literal(Value::from_bool(true));
        else if (n == "false" || n == "False") e = literal(Value::from_bool(false));
        else if (n == "none" || n == "None") e = literal(Value::none());
        else {
          e = make(Expr::Kind::Name, token.line);
          e->name = n;
        }
        advance();
        return e;
      }
      case T::String: {
        std::string text;
        const int line = token.line;
        while (current().type == T::String) {  // adjacent strings concatenate
          text += current().text;
          advance();
        }
        auto e = make(Expr::Kind::Literal, line);
        e->value = Value::from_string(std::move(text));
        return e;
      }
      case T::Integer: {
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(token.text.c_str(), &end, 10);
        if (errno != 0) fail("integer literal too large: " + token.text);
        auto e = literal(Value::from_int(v));
        advance();
        return e;
      }
      case T::Float: {
        auto e = literal(Value::from_float(std::strtod(token.text.c_str(), nullptr)));
        advance();
        return e;
      }
      case T::Operator:
        if (token.text == "(") {
          advance();
          ExprPtr e = parse_tuple(true, true);
          expect_op(")");
          return e;
        }
        if (token.text == "[") {
          auto e = make(Expr::Kind::ListKind, token.line);
          advance();
          while (!is_op("]")) {
            if (!e->children.empty()) expect_op(",");
            if (is_op("]")) break;
            e->children.push_back(parse_expression(true));
          }
          expect_op("]");
          return e;
        }
        if (token.text == "{") {
          auto e = make(Expr::Kind::DictKind, token.line);
          advance();
          while (!is_op("}")) {
            if (!e->children.empty()) expect_op(",");
            if (is_op("}")) break;
            e->children.push_back(parse_expression(true));
            expect_op(":");
            e->children.push_back(parse_expression(true));
          }
          expect_op("}");
          return e;
        }
        [[fallthrough]];
      default: fail("unexpected " + describe());
    }
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const int line = current().line;
    if (skip_op(".")) {
      if (current().type == T::Integer) {
        auto e = make(Expr::Kind::Item, line);
        e->children.push_back(std::move(node));
        auto index = make(Expr::Kind::Literal, line);
        index->value = Value::from_int(std::atoll(current().text.c_str()));
        e->children.push_back(std::move(index));
        advance();
        return e;
      }
      auto e = make(Expr::Kind::Attribute, line);
      e->name = expect_name();
      e->children.push_back(std::move(node));
      return e;
    }
    expect_op("[");
    std::vector<ExprPtr> parts;  // slice parts, or a single index
    bool slice = false;
    ExprPtr index;
    if (!is_op(":")) index = parse_expression(true);
    if (is_op(":")) {
      slice = true;
      parts.push_back(std::move(index));
      for (int k = 0; k < 2; ++k) {
        if (!skip_op(":")) {
          parts.push_back(nullptr);
          continue;
        }
        parts.push_back(is_op(":") || is_op("]") ? nullptr : parse_expression(true));
      }
    }
    if (is_op(",")) fail("unsupported: tuple subscripts");
    expect_op("]");
    auto e = make(slice ? Expr::Kind::Slice : Expr::Kind::Item, line);
    e->children.push_back(std::move(node));
    if (slice) {
      for (auto& p : parts) e->children.push_back(std::move(p));
    } else {
      e->children.push_back(std::move(index));
    }
    return e;
  }

  void parse_arguments(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) fail("unsupported: *args and **kwargs in calls");
      if (current().type == T::Name && peek().type == T::Operator && peek().text == "=") {
        std::string name = current().text;
        advance();
        advance();
        e.keyword.emplace_back(std::move(name), parse_expression(true));
      } else {
        if (!e.keyword.empty()) fail("positional argument after keyword argument");
        e.children.push_back(parse_expression(true));
      }
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(Expr::Kind::Call, current().line);
    e->children.push_back(std::move(node));
    parse_arguments(*e);
    return e;
  }

  ExprPtr parse_filter(ExprPtr node) {
    auto e = make(Expr::Kind::Filter, current().line);
    expect_op("|");
    e->name = expect_name();
    while (skip_op(".")) {
      e->name += '.';
      e->name += expect_name();
    }
    e->children.push_back(std::move(node));
    if (is_op("(")) parse_arguments(*e);
    return e;
  }

  ExprPtr parse_test(ExprPtr node) {
    auto e = make(Expr::Kind::Test, current().line);
    advance();  // is
    e->negated = skip_name("not");
    if (current().type == T::Name) {
      e->name = current().text;
      advance();
    } else if (is_op("==") || is_op("!=") || is_op("<") || is_op("<=") || is_op(">") || is_op(">=")) {
      e->name = current().text;
      advance();
    } else {
      fail("expected a test name after 'is', found " + describe());
    }
    e->children.push_back(std::move(node));
    if (is_op("(")) {
      parse_arguments(*e);
    } else if ((current().type == T::Name || current().type == T::String || current().type == T::Integer ||
                current().type == T::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and") && !is_name("if")) {
      if (is_name("is")) fail("you cannot chain multiple tests with 'is'");
      e->children.push_back(parse_postfix(parse_primary()));
    }
    return e;
  }

  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

Program parse(std::string_view source) { return Parser(tokenize(source)).run(); }

}  // namespace q3vl::jinja
