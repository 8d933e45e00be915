#pragma once
// Geometry of the vision tower's patch grid (docs/model-math.md §3.5, §4.2, §4.3), written once for two
// back ends: plain integers/floats (the runtime's patchify, tests) and ONNX graph values (the
// exported vision graph computes it from image_grid_thw). `A` supplies the arithmetic:
//   Int/Float value types; constant_int, constant_float; add, sub, mul, div (floor, operands >= 0),
//   mod, min_int; to_float, trunc_to_int (toward zero, operands >= 0); fadd, fsub, fmul, fdiv;
//   select_float(cond_less_a, cond_less_b, if_less, otherwise).
#include <cstdint>
#include <utility>

namespace q3vl::vision_geometry {

// Row `index` of one frame's patches in HF order (2x2 merge blocks contiguous, row-major inside a
// block, blocks row-major) for a frame `w` patches wide -> the patch's (row, col) in the grid.
template <typename A>
std::pair<typename A::Int, typename A::Int> patch_row_col(A& a, const typename A::Int& index,
                                                          const typename A::Int& w) {
  const auto two = a.constant_int(2);
  const auto four = a.constant_int(4);
  const auto block = a.div(index, four);
  const auto within = a.mod(index, four);
  const auto blocks_per_row = a.div(w, two);
  const auto block_row = a.div(block, blocks_per_row);
  const auto block_col = a.mod(block, blocks_per_row);
  const auto row = a.add(a.mul(block_row, two), a.div(within, two));
  const auto col = a.add(a.mul(block_col, two), a.mod(within, two));
  return {row, col};
}

// torch.linspace(0, end, steps)[i] in float32 as torch's CPU kernel computes it: the first half
// counts up from 0, the second half down from `end`, so both endpoints are exact.
template <typename A>
typename A::Float linspace_value(A& a, const typename A::Int& i, const typename A::Int& steps, float end) {
  const auto one = a.constant_int(1);
  const auto end_value = a.constant_float(end);
  // steps == 1 gives [0]; max(steps - 1, 1) avoids a 0/0 that the select would discard anyway.
  const auto intervals = a.max_int(a.sub(steps, one), one);
  const auto step = a.fdiv(end_value, a.to_float(intervals));
  const auto up = a.fmul(step, a.to_float(i));
  const auto down = a.fsub(end_value, a.fmul(step, a.to_float(a.sub(a.sub(steps, one), i))));
  return a.select_float(i, a.div(steps, a.constant_int(2)), up, down);  // i < steps / 2 ? up : down
}

// Bilinear sample of the side x side learned position table at patch (row, col) of an h x w grid,
// align-corners style (HF get_vision_bilinear_indices_and_weights): four table rows and weights.
template <typename A>
struct BilinearCorners {
  typename A::Int index[4];
  typename A::Float weight[4];
};

template <typename A>
BilinearCorners<A> position_corners(A& a, const typename A::Int& row, const typename A::Int& col,
                                    const typename A::Int& h, const typename A::Int& w, std::int64_t side) {
  const float end = static_cast<float>(side - 1);
  const auto y = linspace_value(a, row, h, end);
  const auto x = linspace_value(a, col, w, end);
  const auto y0 = a.trunc_to_int(y);
  const auto x0 = a.trunc_to_int(x);
  const auto last = a.constant_int(side - 1);
  const auto one = a.constant_int(1);
  const auto y1 = a.min_int(a.add(y0, one), last);
  const auto x1 = a.min_int(a.add(x0, one), last);
  const auto dy = a.fsub(y, a.to_float(y0));
  const auto dx = a.fsub(x, a.to_float(x0));
  const auto one_f = a.constant_float(1.0f);
  const auto ry = a.fsub(one_f, dy);
  const auto rx = a.fsub(one_f, dx);
  const auto side_int = a.constant_int(side);
  const auto base0 = a.mul(y0, side_int);
  const auto base1 = a.mul(y1, side_int);
  BilinearCorners<A> out{{a.add(base0, x0), a.add(base0, x1), a.add(base1, x0), a.add(base1, x1)},
                         {a.fmul(ry, rx), a.fmul(ry, dx), a.fmul(dy, rx), a.fmul(dy, dx)}};
  return out;
}

// Plain scalar arithmetic: the same formulas evaluated directly.
struct ScalarArith {
  using Int = std::int64_t;
  using Float = float;
  Int constant_int(std::int64_t v) const { return v; }
  Float constant_float(float v) const { return v; }
  Int add(Int x, Int y) const { return x + y; }
  Int sub(Int x, Int y) const { return x - y; }
  Int mul(Int x, Int y) const { return x * y; }
  Int div(Int x, Int y) const { return x / y; }
  Int mod(Int x, Int y) const { return x % y; }
  Int min_int(Int x, Int y) const { return x < y ? x : y; }
  Int max_int(Int x, Int y) const { return x > y ? x : y; }
  Float to_float(Int x) const { return static_cast<Float>(x); }
  Int trunc_to_int(Float x) const { return static_cast<Int>(x); }
  Float fadd(Float x, Float y) const { return x + y; }
  Float fsub(Float x, Float y) const { return x - y; }
  Float fmul(Float x, Float y) const { return x * y; }
  Float fdiv(Float x, Float y) const { return x / y; }
  Float select_float(Int a, Int b, Float if_less, Float otherwise) const { return a < b ? if_less : otherwise; }
};

}  // namespace q3vl::vision_geometry
