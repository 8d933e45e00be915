#pragma once
// Jinja's filters, tests and globals, and the methods of str and dict that chat templates call.
// Each throws RenderError for a construct it does not support, naming it.
#include <memory>
#include <string>
#include <vector>

#include "text/jinja/value.h"

namespace q3vl::jinja {

// How a filter such as map() or select() applies another filter or test by name.
struct Builtins {
  static Value filter(const std::string& name, const Value& input, CallArgs& args);
  static bool test(const std::string& name, const Value& input, CallArgs& args);
  // obj.name: a bound method of str or dict, a dict's item, or Undefined.
  static Value attribute(const Value& object, const std::string& name);
  // obj[key]
  static Value item(const Value& object, const Value& key);
  // range, namespace, dict, raise_exception, strftime_now; every namespace() made is added to
  // `namespaces` (the caller empties them after the render, breaking any reference cycle).
  static void add_globals(Dict& globals, const std::shared_ptr<std::vector<std::shared_ptr<Dict>>>& namespaces);
};

// Argument helpers: positional index or keyword name; missing -> fallback.
const Value* argument(const CallArgs& args, std::size_t index, const char* name);

}  // namespace q3vl::jinja
