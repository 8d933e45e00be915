#pragma once
// The syntax tree of a chat template: expressions and statements, each with its template line.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja/value.h"

namespace q3vl::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,    // value
    Name,       // name
    ListKind,   // children
    Tuple,      // children
    DictKind,   // keyword: (key expr in children[i], value in children[i+1]) pairs in children
    Attribute,  // children[0].name
    Item,       // children[0][children[1]]
    Slice,      // children[0][children[1]:children[2]:children[3]] (null: omitted)
    Call,       // children[0](children[1..], keyword)
    Filter,     // children[0] | name(children[1..], keyword)
    Test,       // children[0] is [not] name(children[1..])
    Unary,      // name ("-", "+", "not") children[0]
    Binary,     // children[0] name children[1]: + - * / // % ** ~ and or
    Compare,    // children[0] ops[0] children[1] ops[1] children[2] ...
    Conditional // children[1] if children[0] else children[2] (children[2] may be null)
  };
  Kind kind;
  int line = 0;
  Value value;
  std::string name;
  bool negated = false;
  std::vector<std::string> ops;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind { Text, Output, If, For, Set, SetBlock, Macro, CallBlock, Break, Continue, Generation };
  Kind kind;
  int line = 0;
  std::string text;                                   // Text; Macro/Set: the name
  ExprPtr expr;                                       // Output, For (iterable), Set (value), CallBlock (call)
  ExprPtr condition;                                  // For ... if condition
  std::vector<std::string> targets;                   // For, Set: names (tuple unpacking when > 1)
  std::string attribute;                              // Set ns.attribute = ...
  std::vector<std::pair<ExprPtr, Body>> branches;     // If: (condition, body), else: null condition
  Body body;                                          // For, SetBlock, Macro, CallBlock, Generation
  Body else_body;                                     // For
  std::vector<std::pair<std::string, ExprPtr>> parameters;  // Macro, CallBlock (caller's), default may be null
};

struct Program {
  Body body;
};

}  // namespace q3vl::jinja
