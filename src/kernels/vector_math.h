#pragma once
// Small vector helpers shared by q3vl's float kernels (decode attention, SwiGLU): GCC's vector
// extensions, so one source serves every instruction set. A kernel's loops include these forced
// inline into one build per instruction set (a function with __attribute__((target(...))) each), so
// each runs in that build's registers. For kernel .cpp files only.
#include <bit>
#include <cstdint>
#include <cstring>

#if defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "math/half_float.h"

// The wide vector values below never cross a call between separately compiled code (everything is
// inlined into each build), so GCC's note on their ABI does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#define Q3VL_INLINE [[gnu::always_inline]] inline

namespace q3vl::kernels::vector_math {

// Vectors of L floats: 16 (AVX-512), 8 (AVX2) or 4 (SSE, the portable build), in GCC's vector
// extensions, so one source serves every instruction set.
template <int L>
struct VectorTypes;
template <>
struct VectorTypes<16> {
  using F = float __attribute__((vector_size(64)));
  using I = std::int32_t __attribute__((vector_size(64)));
};
template <>
struct VectorTypes<8> {
  using F = float __attribute__((vector_size(32)));
  using I = std::int32_t __attribute__((vector_size(32)));
};
template <>
struct VectorTypes<4> {
  using F = float __attribute__((vector_size(16)));
  using I = std::int32_t __attribute__((vector_size(16)));
};
template <int L>
using Floats = typename VectorTypes<L>::F;
template <int L>
using Ints = typename VectorTypes<L>::I;

template <int L>
Q3VL_INLINE Floats<L> load(const float* p) {
  Floats<L> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
// L IEEE half floats to floats: F16C's conversion in a file compiled with it (-mf16c; AVX-512 for
// 16 lanes), one value at a time otherwise. Only files built per instruction set with those flags
// (not target attributes) get the instructions. (The masked form: GCC 12 warns on the plain one.)
template <int L>
Q3VL_INLINE Floats<L> load(const std::uint16_t* p) {
#if defined(__AVX512F__)
  if constexpr (L == 16) return std::bit_cast<Floats<16>>(_mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
#endif
#if defined(__F16C__)
  if constexpr (L == 8) return std::bit_cast<Floats<8>>(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#endif
  Floats<L> v;
  for (int i = 0; i < L; ++i) v[i] = fp16_to_float(p[i]);
  return v;
}
template <int L>
Q3VL_INLINE void store(float* p, Floats<L> v) {
  std::memcpy(p, &v, sizeof(v));
}
// x in every lane. (x - 0 is x for every x, -0 included, so the compiler drops the subtraction and
// emits one broadcast; x + 0 is not (-0 + 0 is +0), so it kept an add before each broadcast.)
template <int L>
Q3VL_INLINE Floats<L> splat(float x) {
  return x - Floats<L>{};
}
template <int L>
Q3VL_INLINE float lanes_sum(Floats<L> v) {
  using Four = Floats<4>;
  Four four;
  if constexpr (L == 16) {
    const Floats<8> eight = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    four = __builtin_shufflevector(eight, eight, 0, 1, 2, 3) + __builtin_shufflevector(eight, eight, 4, 5, 6, 7);
  } else if constexpr (L == 8) {
    four = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
  } else {
    four = v;
  }
  return (four[0] + four[2]) + (four[1] + four[3]);
}

// e^x for x <= 88: x = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor series to r^7 (the first
// term left out is below float's rounding there), times 2^n built in the exponent bits. Below
// -87 it returns e^-87 instead of a denormal: softmax terms that small add nothing to a sum of at
// least 1.
template <int L>
Q3VL_INLINE Floats<L> exp_of(Floats<L> x) {
  const Floats<L> lowest = splat<L>(-87.0f), highest = splat<L>(88.0f);
  x = x < lowest ? lowest : x;
  x = x > highest ? highest : x;
  const Floats<L> round = splat<L>(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const Floats<L> shifted = x * 1.44269504088896341f + round;
  const Floats<L> n = shifted - round;
  const Ints<L> n_int = std::bit_cast<Ints<L>>(shifted) - std::bit_cast<Ints<L>>(round);
  const Floats<L> r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // ln 2 in two parts, exact first
  Floats<L> p = splat<L>(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const Ints<L> two_to_n = (n_int + 127) << 23;
  return p * std::bit_cast<Floats<L>>(two_to_n);
}

}  // namespace q3vl::kernels::vector_math
