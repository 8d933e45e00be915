#pragma once
// The arithmetic interface of math/vision_geometry.h over ONNX graph values: each operation adds
// a node, so the exported graph computes exactly the formulas the C++ side evaluates directly.
// Int values are int64 tensors, Float values float32 tensors; shapes broadcast as in ONNX.
#include <string>

#include "graph/graph_builder.h"

namespace q3vl::graph {

class GraphArith {
 public:
  using Int = std::string;
  using Float = std::string;

  explicit GraphArith(GraphBuilder& g) : g_(g) {}

  Int constant_int(std::int64_t v) { return g_.scalar_i64(v, "ci"); }
  Float constant_float(float v) { return g_.scalar_f32(v, "c"); }
  Int add(const Int& x, const Int& y) { return g_.op("Add", {x, y}); }
  Int sub(const Int& x, const Int& y) { return g_.op("Sub", {x, y}); }
  Int mul(const Int& x, const Int& y) { return g_.op("Mul", {x, y}); }
  Int div(const Int& x, const Int& y) { return g_.op("Div", {x, y}); }  // truncates; operands >= 0
  Int mod(const Int& x, const Int& y) { return g_.op("Mod", {x, y}); }
  Int min_int(const Int& x, const Int& y) { return g_.op("Min", {x, y}); }
  Int max_int(const Int& x, const Int& y) { return g_.op("Max", {x, y}); }
  Float to_float(const Int& x) { return g_.op("Cast", {x}, {{"to", std::int64_t{kFloat}}}); }
  Int trunc_to_int(const Float& x) { return g_.op("Cast", {x}, {{"to", std::int64_t{kInt64}}}); }
  Float fadd(const Float& x, const Float& y) { return g_.op("Add", {x, y}); }
  Float fsub(const Float& x, const Float& y) { return g_.op("Sub", {x, y}); }
  Float fmul(const Float& x, const Float& y) { return g_.op("Mul", {x, y}); }
  Float fdiv(const Float& x, const Float& y) { return g_.op("Div", {x, y}); }
  Float select_float(const Int& a, const Int& b, const Float& if_less, const Float& otherwise) {
    return g_.op("Where", {g_.op("Less", {a, b}), if_less, otherwise});
  }

 private:
  GraphBuilder& g_;
};

}  // namespace q3vl::graph
