// Renders a parsed chat template: statements, scopes, loops, macros and expression evaluation.
#include <cmath>
#include <algorithm>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "text/jinja/ast.h"
#include "text/jinja/builtins.h"
#include "text/jinja/parser.h"
#include "text/jinja/template.h"

namespace q3vl::jinja {
namespace {

struct Scope {
  Dict vars;
  std::shared_ptr<Scope> parent;

  Value* find(const std::string& name) {
    for (Scope* s = this; s; s = s->parent.get()) {
      for (auto& [key, value] : s->vars) {
        if (key == name) return &value;
      }
    }
    return nullptr;
  }
  void set(const std::string& name, Value value) {
    for (auto& [key, existing] : vars) {
      if (key == name) {
        existing = std::move(value);
        return;
      }
    }
    vars.emplace_back(name, std::move(value));
  }
};
using ScopePtr = std::shared_ptr<Scope>;

struct BreakSignal {};
struct ContinueSignal {};

[[noreturn]] void fail_at(int line, const std::string& message) {
  throw InvalidInput("chat template line " + std::to_string(line) + ": " + message);
}

void check_overflow(bool overflow) {
  if (overflow) throw RenderError("integer overflow");
}

// Limits that keep a hostile or broken template (a package is a user's file) from exhausting the
// stack, memory or time: errors, not crashes or hangs.
constexpr std::size_t kMaxText = std::size_t{64} << 20;  // one string, and the whole output
constexpr int kMaxCallDepth = 200;                        // nested macro calls
constexpr std::int64_t kMaxSteps = 1'000'000;             // statements run and loop iterations

const std::string& checked_size(const std::string& text) {
  if (text.size() > kMaxText) throw RenderError("chat template output too large (over 64 MiB)");
  return text;
}

double python_mod(double a, double b) {
  const double r = std::fmod(a, b);
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined()) {
    throw RenderError(a.is_undefined() ? a.text : b.text);
  }
  if (op == "+" || op == "%" || op == "*") {
    refuse_markup(a, op == "%" ? "'%' formatting" : "arithmetic");
    refuse_markup(b, op == "%" ? "'%' formatting" : "arithmetic");
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.text.size() + b.text.size() > kMaxText) throw RenderError("chat template output too large (over 64 MiB)");
      return Value::from_string(a.text + b.text);
    }
    if (a.is_sequence() && a.kind == b.kind) {
      List items = *a.list;
      items.insert(items.end(), b.list->begin(), b.list->end());
      return Value::from_list(std::move(items), a.kind == Value::Kind::Tuple);
    }
  }
  if (op == "*") {
    const Value* text = a.is_string() || a.is_sequence() ? &a : (b.is_string() || b.is_sequence() ? &b : nullptr);
    const Value* count = text == &a ? &b : &a;
    if (text && (count->kind == Value::Kind::Int || count->kind == Value::Kind::Bool)) {
      const std::int64_t n = count->as_integer();
      const std::size_t unit = text->is_string() ? text->text.size() : text->list->size() * 16;
      if (n > 0 && unit > 0 && static_cast<std::uint64_t>(n) > kMaxText / unit) {
        throw RenderError("chat template output too large (over 64 MiB)");
      }
      if (text->is_string()) {
        std::string out;
        for (std::int64_t i = 0; i < n; ++i) out += text->text;
        return Value::from_string(std::move(out));
      }
      List items;
      for (std::int64_t i = 0; i < n; ++i) items.insert(items.end(), text->list->begin(), text->list->end());
      return Value::from_list(std::move(items), text->kind == Value::Kind::Tuple);
    }
  }
  if (op == "%" && a.is_string()) {
    // printf-style formatting with %s, %d, %%
    List values = b.kind == Value::Kind::Tuple ? *b.list : List{b};
    std::string out;
    std::size_t next = 0;
    for (std::size_t i = 0; i < a.text.size(); ++i) {
      if (a.text[i] != '%') {
        out += a.text[i];
        continue;
      }
      if (i + 1 >= a.text.size()) throw RenderError("incomplete format");
      const char spec = a.text[++i];
      if (spec == '%') {
        out += '%';
        continue;
      }
      if (next >= values.size()) throw RenderError("not enough arguments for format string");
      const Value& v = values[next++];
      if (spec == 's') out += to_str(v);
      else if (spec == 'r') out += to_repr(v);
      else if (spec == 'd' || spec == 'i') out += std::to_string(static_cast<std::int64_t>(v.as_double()));
      else throw RenderError(std::string("unsupported format specifier '%") + spec + "'");
    }
    if (next != values.size()) throw RenderError("not all arguments converted during string formatting");
    return Value::from_string(std::move(out));
  }
  if (!a.is_number() || !b.is_number()) {
    throw RenderError("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
  }
  const bool integers = a.kind != Value::Kind::Float && b.kind != Value::Kind::Float;
  if (op == "/") {
    if (b.as_double() == 0) throw RenderError("division by zero");
    return Value::from_float(a.as_double() / b.as_double());
  }
  if (integers) {
    const std::int64_t x = a.as_integer(), y = b.as_integer();
    std::int64_t r = 0;
    if (op == "+" || op == "-" || op == "*") {
      check_overflow(op == "+" ? __builtin_add_overflow(x, y, &r)
                               : op == "-" ? __builtin_sub_overflow(x, y, &r) : __builtin_mul_overflow(x, y, &r));
      return Value::from_int(r);
    }
    if (op == "//" || op == "%") {
      if (y == 0) throw RenderError("integer division or modulo by zero");
      std::int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      return Value::from_int(op == "//" ? q : m);
    }
    if (op == "**") {
      if (y < 0) return Value::from_float(std::pow(static_cast<double>(x), static_cast<double>(y)));
      std::int64_t result = 1;
      for (std::int64_t i = 0; i < y; ++i) {
        check_overflow(__builtin_mul_overflow(result, x, &r));
        result = r;
      }
      return Value::from_int(result);
    }
  }
  const double x = a.as_double(), y = b.as_double();
  if (op == "+") return Value::from_float(x + y);
  if (op == "-") return Value::from_float(x - y);
  if (op == "*") return Value::from_float(x * y);
  if (op == "**") return Value::from_float(std::pow(x, y));
  if (y == 0) throw RenderError("float division by zero");
  if (op == "//") return Value::from_float(std::floor(x / y));
  if (op == "%") return Value::from_float(python_mod(x, y));
  throw RenderError("unsupported operator " + op);
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Value::Kind::String:
      if (!item.is_string()) throw RenderError("'in <string>' requires string as left operand");
      return container.text.find(item.text) != std::string::npos;
    case Value::Kind::ListKind:
    case Value::Kind::Tuple:
      for (const Value& v : *container.list) {
        if (equal(v, item)) return true;
      }
      return false;
    case Value::Kind::DictKind: return item.is_string() && container.find(item.text) != nullptr;
    case Value::Kind::Undefined: return false;
    default: throw RenderError(std::string("argument of type '") + type_name(container) + "' is not iterable");
  }
}

class Interpreter {
 public:
  void execute(const Body& body, const ScopePtr& scope, std::string& out) {
    for (const StmtPtr& s : body) execute(*s, scope, out);
  }

  Value evaluate(const Expr& e, const ScopePtr& scope) {
    try {
      return evaluate_unchecked(e, scope);
    } catch (const RenderError& error) {
      fail_at(e.line, error.what());
    }
  }

 private:
  void execute(const Stmt& s, const ScopePtr& scope, std::string& out) {
    if (++steps_ > kMaxSteps) fail_at(s.line, "chat template takes too many steps (over 1,000,000)");
    if (out.size() > kMaxText) fail_at(s.line, "chat template output too large (over 64 MiB)");
    switch (s.kind) {
      case Stmt::Kind::Text: out += s.text; return;
      case Stmt::Kind::Output: {
        const Value v = evaluate(*s.expr, scope);
        try {
          out += to_str(v);
        } catch (const RenderError& error) {
          fail_at(s.line, error.what());
        }
        return;
      }
      case Stmt::Kind::If:
        for (const auto& [condition, body] : s.branches) {
          if (!condition || truthy(evaluate(*condition, scope))) {
            execute(body, scope, out);
            return;
          }
        }
        return;
      case Stmt::Kind::For: run_for(s, scope, out); return;
      case Stmt::Kind::Set: {
        Value v = evaluate(*s.expr, scope);
        if (!s.attribute.empty()) {
          Value* target = scope->find(s.text);
          if (!target || target->kind != Value::Kind::Namespace) {
            fail_at(s.line, "cannot assign attribute on non-namespace object '" + s.text + "'");
          }
          for (auto& [key, existing] : *target->dict) {
            if (key == s.attribute) {
              existing = std::move(v);
              return;
            }
          }
          target->dict->emplace_back(s.attribute, std::move(v));
          return;
        }
        assign(s.targets, std::move(v), *scope, s.line);
        return;
      }
      case Stmt::Kind::SetBlock: {
        std::string text;
        execute(s.body, scope, text);
        scope->set(s.text, Value::from_string(std::move(text)));
        return;
      }
      case Stmt::Kind::Macro: scope->set(s.text, make_macro(s, scope, s.text)); return;
      case Stmt::Kind::CallBlock: {
        const Value caller = make_macro(s, scope, "caller");
        const Expr& call = *s.expr;
        Value function = evaluate(*call.children[0], scope);
        CallArgs args = evaluate_arguments(call, scope, 1);
        args.keyword.emplace_back("caller", caller);
        out += to_str(invoke(function, args, call.line));
        return;
      }
      case Stmt::Kind::Break: throw BreakSignal{};
      case Stmt::Kind::Continue: throw ContinueSignal{};
      case Stmt::Kind::Generation: execute(s.body, scope, out); return;
    }
  }

  void assign(const std::vector<std::string>& targets, Value v, Scope& scope, int line) {
    if (targets.size() == 1) {
      scope.set(targets[0], std::move(v));
      return;
    }
    List items;
    try {
      items = iterate(v);
    } catch (const RenderError& error) {
      fail_at(line, std::string("cannot unpack: ") + error.what());
    }
    if (items.size() != targets.size()) {
      fail_at(line, "cannot unpack " + std::to_string(items.size()) + " values into " +
                        std::to_string(targets.size()) + " names");
    }
    for (std::size_t i = 0; i < targets.size(); ++i) scope.set(targets[i], std::move(items[i]));
  }

  void run_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
    const Value iterable = evaluate(*s.expr, scope);
    List items;
    try {
      items = iterate(iterable);
    } catch (const RenderError& error) {
      fail_at(s.line, error.what());
    }
    auto loop_scope = std::make_shared<Scope>();
    loop_scope->parent = scope;
    if (s.condition) {
      List kept;
      for (Value& item : items) {
        assign(s.targets, item, *loop_scope, s.line);
        if (truthy(evaluate(*s.condition, loop_scope))) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      execute(s.else_body, scope, out);
      return;
    }
    const auto n = static_cast<std::int64_t>(items.size());
    // One loop object for the whole loop, updated in place (as jinja2's LoopContext is).
    auto position = std::make_shared<std::int64_t>(0);
    Dict fields;
    for (const char* name : {"index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0",
                             "previtem", "nextitem"}) {
      fields.emplace_back(name, Value());
    }
    fields.emplace_back("cycle", Value::callable("loop.cycle", [position](CallArgs& args) {
                          if (args.positional.empty()) throw RenderError("no items for cycling given");
                          return args.positional[static_cast<std::size_t>(*position) % args.positional.size()];
                        }));
    const Value loop = Value::from_dict(std::move(fields));
    Dict& f = *loop.dict;
    f[6].second = Value::from_int(n);
    f[7].second = Value::from_int(1);
    f[8].second = Value::from_int(0);
    for (std::int64_t i = 0; i < n; ++i) {
      if (++steps_ > kMaxSteps) fail_at(s.line, "chat template takes too many steps (over 1,000,000)");
      const auto at = static_cast<std::size_t>(i);
      // Each iteration has its own scope: a set in the body does not carry to the next one.
      auto iteration_scope = std::make_shared<Scope>();
      iteration_scope->parent = scope;
      assign(s.targets, items[at], *iteration_scope, s.line);
      *position = i;
      f[0].second = Value::from_int(i + 1);
      f[1].second = Value::from_int(i);
      f[2].second = Value::from_int(n - i);
      f[3].second = Value::from_int(n - i - 1);
      f[4].second = Value::from_bool(i == 0);
      f[5].second = Value::from_bool(i == n - 1);
      f[9].second = i > 0 ? items[at - 1] : Value::undefined("there is no previous item");
      f[10].second = i + 1 < n ? items[at + 1] : Value::undefined("there is no next item");
      iteration_scope->set("loop", loop);
      try {
        execute(s.body, iteration_scope, out);
      } catch (const ContinueSignal&) {
      } catch (const BreakSignal&) {
        break;
      }
    }
  }

  // The macro refers to its defining scope without owning it (the scope holds the macro: owning
  // would be a cycle that never frees); the interpreter keeps the scope alive until the render ends.
  Value make_macro(const Stmt& s, const ScopePtr& owned_scope, const std::string& name) {
    retained_scopes_.push_back(owned_scope);
    const ScopePtr scope(ScopePtr{}, owned_scope.get());  // non-owning
    return Value::callable(name, [this, &s, scope, name](CallArgs& args) {
      if (call_depth_ >= kMaxCallDepth) throw RenderError("macro calls nested too deeply (over 200)");
      struct DepthGuard {
        int& depth;
        explicit DepthGuard(int& d) : depth(d) { ++depth; }
        ~DepthGuard() { --depth; }
      } guard(call_depth_);
      auto local = std::make_shared<Scope>();
      local->parent = scope;
      if (args.positional.size() > s.parameters.size()) {
        throw RenderError("macro '" + name + "' takes not more than " + std::to_string(s.parameters.size()) +
                          " argument(s)");
      }
      for (std::size_t i = 0; i < s.parameters.size(); ++i) {
        const auto& [parameter, default_value] = s.parameters[i];
        const Value* given = i < args.positional.size() ? &args.positional[i] : nullptr;
        for (const auto& [key, value] : args.keyword) {
          if (key == parameter) given = &value;
        }
        if (given) local->set(parameter, *given);
        else if (default_value) local->set(parameter, evaluate(*default_value, local));
        else local->set(parameter, Value::undefined("'" + parameter + "' is undefined"));
      }
      for (const auto& [key, value] : args.keyword) {
        bool known = key == "caller";
        for (const auto& parameter : s.parameters) known = known || parameter.first == key;
        if (!known) throw RenderError("macro '" + name + "' takes no keyword argument '" + key + "'");
        if (key == "caller") local->set("caller", value);
      }
      std::string text;
      execute(s.body, local, text);
      return Value::from_string(std::move(text));
    });
  }

  CallArgs evaluate_arguments(const Expr& e, const ScopePtr& scope, std::size_t first) {
    CallArgs args;
    for (std::size_t i = first; i < e.children.size(); ++i) args.positional.push_back(evaluate(*e.children[i], scope));
    for (const auto& [key, value] : e.keyword) args.keyword.emplace_back(key, evaluate(*value, scope));
    return args;
  }

  Value invoke(const Value& function, CallArgs& args, int line) {
    if (function.kind != Value::Kind::Callable) {
      if (function.is_undefined()) fail_at(line, function.text);
      fail_at(line, std::string("'") + type_name(function) + "' object is not callable");
    }
    try {
      return (*function.function)(args);
    } catch (const RenderError& error) {
      fail_at(line, error.what());
    }
  }

  Value evaluate_unchecked(const Expr& e, const ScopePtr& scope) {
    switch (e.kind) {
      case Expr::Kind::Literal: return e.value;
      case Expr::Kind::Name: {
        const Value* v = scope->find(e.name);
        return v ? *v : Value::undefined("'" + e.name + "' is undefined");
      }
      case Expr::Kind::ListKind:
      case Expr::Kind::Tuple: {
        List items;
        for (const auto& child : e.children) items.push_back(evaluate(*child, scope));
        return Value::from_list(std::move(items), e.kind == Expr::Kind::Tuple);
      }
      case Expr::Kind::DictKind: {
        Dict items;
        for (std::size_t i = 0; i + 1 < e.children.size(); i += 2) {
          const Value key = evaluate(*e.children[i], scope);
          if (!key.is_string()) throw RenderError("unsupported: dict literal with a non-string key");
          Value value = evaluate(*e.children[i + 1], scope);
          bool replaced = false;
          for (auto& [k, existing] : items) {
            if (k == key.text) {
              existing = value;
              replaced = true;
            }
          }
          if (!replaced) items.emplace_back(key.text, std::move(value));
        }
        return Value::from_dict(std::move(items));
      }
      case Expr::Kind::Attribute: return Builtins::attribute(evaluate(*e.children[0], scope), e.name);
      case Expr::Kind::Item:
        return Builtins::item(evaluate(*e.children[0], scope), evaluate(*e.children[1], scope));
      case Expr::Kind::Slice: return slice(e, scope);
      case Expr::Kind::Call: {
        const Value function = evaluate(*e.children[0], scope);
        CallArgs args = evaluate_arguments(e, scope, 1);
        return invoke(function, args, e.line);
      }
      case Expr::Kind::Filter: {
        const Value input = evaluate(*e.children[0], scope);
        CallArgs args = evaluate_arguments(e, scope, 1);
        return Builtins::filter(e.name, input, args);
      }
      case Expr::Kind::Test: {
        const Value input = evaluate(*e.children[0], scope);
        CallArgs args = evaluate_arguments(e, scope, 1);
        return Value::from_bool(Builtins::test(e.name, input, args) != e.negated);
      }
      case Expr::Kind::Unary: {
        const Value v = evaluate(*e.children[0], scope);
        if (e.name == "not") return Value::from_bool(!truthy(v));
        if (v.is_undefined()) throw RenderError(v.text);
        if (!v.is_number()) throw RenderError(std::string("bad operand type for unary ") + e.name + ": '" + type_name(v) + "'");
        if (e.name == "+") return v.kind == Value::Kind::Bool ? Value::from_int(v.as_integer()) : v;
        if (v.kind == Value::Kind::Float) return Value::from_float(-v.number);
        return arithmetic("-", Value::from_int(0), v);
      }
      case Expr::Kind::Binary: {
        if (e.name == "and") {
          Value left = evaluate(*e.children[0], scope);
          return truthy(left) ? evaluate(*e.children[1], scope) : left;
        }
        if (e.name == "or") {
          Value left = evaluate(*e.children[0], scope);
          return truthy(left) ? left : evaluate(*e.children[1], scope);
        }
        const Value left = evaluate(*e.children[0], scope);
        const Value right = evaluate(*e.children[1], scope);
        if (e.name == "~") {
          refuse_markup(left, "'~'");
          refuse_markup(right, "'~'");
          std::string joined = to_str(left);
          joined += to_str(right);
          return Value::from_string(checked_size(joined));
        }
        return arithmetic(e.name, left, right);
      }
      case Expr::Kind::Compare: {
        Value left = evaluate(*e.children[0], scope);
        for (std::size_t i = 0; i < e.ops.size(); ++i) {
          Value right = evaluate(*e.children[i + 1], scope);
          const std::string& op = e.ops[i];
          bool result;
          if (op == "==") result = equal(left, right);
          else if (op == "!=") result = !equal(left, right);
          else if (op == "in") result = contains(right, left);
          else if (op == "not in") result = !contains(right, left);
          else {
            const int c = compare(left, right);
            result = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
          }
          if (!result) return Value::from_bool(false);
          left = std::move(right);
        }
        return Value::from_bool(true);
      }
      case Expr::Kind::Conditional:
        if (truthy(evaluate(*e.children[0], scope))) return evaluate(*e.children[1], scope);
        if (e.children[2]) return evaluate(*e.children[2], scope);
        return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
    }
    throw RenderError("unknown expression");
  }

  std::int64_t steps_ = 0;
  int call_depth_ = 0;
  std::vector<ScopePtr> retained_scopes_;

  Value slice(const Expr& e, const ScopePtr& scope) {
    const Value object = evaluate(*e.children[0], scope);
    auto bound = [&](std::size_t i) -> std::optional<std::int64_t> {
      if (!e.children[i]) return std::nullopt;
      const Value v = evaluate(*e.children[i], scope);
      if (v.is_none()) return std::nullopt;
      return v.as_integer();
    };
    const auto start = bound(1), stop = bound(2), step_value = bound(3);
    const std::int64_t step = step_value.value_or(1);
    if (step == 0) throw RenderError("slice step cannot be zero");
    List items;
    std::vector<std::string> chars;
    std::int64_t n;
    if (object.is_string()) {
      chars = code_points(object.text);
      n = static_cast<std::int64_t>(chars.size());
    } else if (object.is_sequence()) {
      n = static_cast<std::int64_t>(object.list->size());
    } else {
      if (object.is_undefined()) throw RenderError(object.text);
      throw RenderError(std::string("'") + type_name(object) + "' object is not subscriptable");
    }
    // Python's slice.indices()
    auto clamp = [&](std::optional<std::int64_t> v, std::int64_t dflt) {
      if (!v) return dflt;
      std::int64_t x = *v;
      if (x < 0) x += n;
      if (step > 0) return std::clamp<std::int64_t>(x, 0, n);
      return std::clamp<std::int64_t>(x, -1, n - 1);
    };
    const std::int64_t begin = clamp(start, step > 0 ? 0 : n - 1);
    const std::int64_t end = clamp(stop, step > 0 ? n : -1);
    std::string text;
    for (std::int64_t i = begin; step > 0 ? i < end : i > end; i += step) {
      if (object.is_string()) text += chars[static_cast<std::size_t>(i)];
      else items.push_back((*object.list)[static_cast<std::size_t>(i)]);
    }
    if (object.is_string()) return Value::from_string(std::move(text));
    return Value::from_list(std::move(items), object.kind == Value::Kind::Tuple);
  }
};

}  // namespace

Template::Template(std::string_view source) : program_(std::make_unique<Program>(parse(source))) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const nlohmann::ordered_json& variables) const {
  if (!variables.is_object()) throw InvalidInput("chat template variables must be a JSON object");
  auto globals = std::make_shared<Scope>();
  // namespace() objects can hold themselves (set ns.me = ns): emptied when the render ends.
  auto namespaces = std::make_shared<std::vector<std::shared_ptr<Dict>>>();
  struct EmptyNamespaces {
    std::vector<std::shared_ptr<Dict>>& created;
    ~EmptyNamespaces() {
      for (const auto& dict : created) dict->clear();
      created.clear();
    }
  } empty_namespaces{*namespaces};
  Builtins::add_globals(globals->vars, namespaces);
  auto scope = std::make_shared<Scope>();
  scope->parent = globals;
  for (const auto& [key, value] : variables.items()) {
    try {
      scope->set(key, from_json(value));
    } catch (const RenderError& error) {
      throw InvalidInput("chat template variable '" + key + "': " + error.what());
    }
  }
  Interpreter interpreter;
  std::string out;
  try {
    interpreter.execute(program_->body, scope, out);
  } catch (const BreakSignal&) {
    throw InvalidInput("chat template: 'break' outside a loop");
  } catch (const ContinueSignal&) {
    throw InvalidInput("chat template: 'continue' outside a loop");
  }
  return out;
}

}  // namespace q3vl::jinja
