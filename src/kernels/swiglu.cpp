#include "kernels/swiglu.h"

#include "kernels/vector_math.h"

namespace q3vl::kernels {
namespace {

using namespace vector_math;

template <int L>
Q3VL_INLINE Floats<L> silu_times(Floats<L> gate, Floats<L> up) {
  return gate / (1.0f + exp_of<L>(-gate)) * up;
}

// The even and odd lanes of two consecutive vectors [g0 u0 g1 u1 ...].
template <int L>
Q3VL_INLINE void deinterleave(Floats<L> a, Floats<L> b, Floats<L>& evens, Floats<L>& odds) {
  if constexpr (L == 16) {
    evens = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    odds = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  } else if constexpr (L == 8) {
    evens = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
    odds = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
  } else {
    evens = __builtin_shufflevector(a, b, 0, 2, 4, 6);
    odds = __builtin_shufflevector(a, b, 1, 3, 5, 7);
  }
}

template <int L>
Q3VL_INLINE void swiglu_row(const float* in, std::int64_t width, GateUpLayout layout, float* out) {
  std::int64_t i = 0;
  if (layout == GateUpLayout::Halves) {
    for (; i + L <= width; i += L) store<L>(out + i, silu_times<L>(load<L>(in + i), load<L>(in + width + i)));
    for (; i < width; ++i) {
      float gate[L] = {}, up[L] = {};
      gate[0] = in[i];
      up[0] = in[width + i];
      out[i] = silu_times<L>(load<L>(gate), load<L>(up))[0];
    }
    return;
  }
  // Interleaved, possibly in place: a chunk's 2L inputs are loaded before its L outputs (which lie
  // at or before them) are stored.
  for (; i + L <= width; i += L) {
    Floats<L> gate, up;
    deinterleave<L>(load<L>(in + 2 * i), load<L>(in + 2 * i + L), gate, up);
    store<L>(out + i, silu_times<L>(gate, up));
  }
  for (; i < width; ++i) {
    float gate[L] = {}, up[L] = {};
    gate[0] = in[2 * i];
    up[0] = in[2 * i + 1];
    out[i] = silu_times<L>(load<L>(gate), load<L>(up))[0];
  }
}

template <int L>
Q3VL_INLINE void swiglu_all(const float* gate_up, std::int64_t rows, std::int64_t width, GateUpLayout layout, float* out) {
  for (std::int64_t r = 0; r < rows; ++r) swiglu_row<L>(gate_up + r * 2 * width, width, layout, out + r * width);
}

void swiglu_portable(const float* gate_up, std::int64_t rows, std::int64_t width, GateUpLayout layout, float* out) {
  swiglu_all<4>(gate_up, rows, width, layout, out);
}
#if defined(Q3VL_X86_KERNELS)
__attribute__((target("avx2,fma"))) void swiglu_avx2(const float* gate_up, std::int64_t rows, std::int64_t width, GateUpLayout layout, float* out) {
  swiglu_all<8>(gate_up, rows, width, layout, out);
}
__attribute__((target("avx2,fma,avx512f"))) void swiglu_avx512(const float* gate_up, std::int64_t rows, std::int64_t width, GateUpLayout layout,
                                                                float* out) {
  swiglu_all<16>(gate_up, rows, width, layout, out);
}
#endif

}  // namespace

void swiglu_rows(const float* gate_up, std::int64_t rows, std::int64_t width, GateUpLayout layout, float* out, Int4Isa isa) {
  switch (usable_isa(isa)) {
#if defined(Q3VL_X86_KERNELS)
    case Int4Isa::Avx512Vnni: return swiglu_avx512(gate_up, rows, width, layout, out);
    case Int4Isa::AvxVnni:  // VNNI adds nothing here
    case Int4Isa::Avx2: return swiglu_avx2(gate_up, rows, width, layout, out);
#endif
    default: return swiglu_portable(gate_up, rows, width, layout, out);
  }
}

}  // namespace q3vl::kernels
