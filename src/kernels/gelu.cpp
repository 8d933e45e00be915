#include "kernels/gelu.h"

#include <algorithm>

#include "kernels/vector_math.h"

namespace q3vl::kernels {
namespace {

using namespace vector_math;

// 0.5 x (1 + tanh u) = x / (1 + e^-2u), u = sqrt(2/pi) (x + 0.044715 x^3). exp_of clamps its
// argument, so far out the result is x (large x) or -0 (very negative x), as tanh's limits give.
template <int L>
Q3VL_INLINE Floats<L> gelu_tanh(Floats<L> x) {
  constexpr float kTwoSqrtTwoOverPi = 1.5957691216057308f;  // 2 sqrt(2/pi)
  const Floats<L> minus_two_u = (x + 0.044715f * x * x * x) * -kTwoSqrtTwoOverPi;
  return x / (1.0f + exp_of<L>(minus_two_u));
}

template <int L>
Q3VL_INLINE void gelu_all(float* values, std::int64_t rows, std::int64_t width, const float* bias) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = values + r * width;
    std::int64_t i = 0;
    for (; i + L <= width; i += L) {
      Floats<L> x = load<L>(row + i);
      if (bias != nullptr) x += load<L>(bias + i);
      store<L>(row + i, gelu_tanh<L>(x));
    }
    for (; i < width; ++i) {
      float one[L] = {};
      one[0] = row[i] + (bias != nullptr ? bias[i] : 0.0f);
      row[i] = gelu_tanh<L>(load<L>(one))[0];
    }
  }
}

void gelu_portable(float* values, std::int64_t rows, std::int64_t width, const float* bias) { gelu_all<4>(values, rows, width, bias); }
#if defined(Q3VL_X86_KERNELS)
__attribute__((target("avx2,fma"))) void gelu_avx2(float* values, std::int64_t rows, std::int64_t width, const float* bias) {
  gelu_all<8>(values, rows, width, bias);
}
__attribute__((target("avx2,fma,avx512f"))) void gelu_avx512(float* values, std::int64_t rows, std::int64_t width, const float* bias) {
  gelu_all<16>(values, rows, width, bias);
}
#endif

}  // namespace

void bias_gelu_tanh_rows(float* values, std::int64_t rows, std::int64_t width, const float* bias, Int4Isa isa) {
  switch (usable_isa(isa)) {
#if defined(Q3VL_X86_KERNELS)
    case Int4Isa::Avx512Vnni: return gelu_avx512(values, rows, width, bias);
    case Int4Isa::AvxVnni:  // VNNI adds nothing here
    case Int4Isa::Avx2: return gelu_avx2(values, rows, width, bias);
#endif
    default: return gelu_portable(values, rows, width, bias);
  }
}

void add_bias_rows(float* values, std::int64_t rows, std::int64_t width, const float* bias) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = values + r * width;
    for (std::int64_t i = 0; i < width; ++i) row[i] += bias[i];
  }
}

void bias_activation_rows(float* values, std::int64_t rows, std::int64_t width, const float* bias, bool gelu, const ParallelFor& parallel,
                          Int4Isa isa) {
  if (!gelu && bias == nullptr) return;
  constexpr std::int64_t kRowsPerTask = 16;
  parallel(static_cast<std::size_t>((rows + kRowsPerTask - 1) / kRowsPerTask), [&](std::size_t task) {
    const std::int64_t first = static_cast<std::int64_t>(task) * kRowsPerTask;
    const std::int64_t count = std::min(kRowsPerTask, rows - first);
    if (gelu) {
      bias_gelu_tanh_rows(values + first * width, count, width, bias, isa);
    } else {
      add_bias_rows(values + first * width, count, width, bias);
    }
  });
}

}  // namespace q3vl::kernels
