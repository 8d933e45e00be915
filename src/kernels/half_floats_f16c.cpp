// The half-float conversions with F16C (compiled with -mavx2 -mf16c; reached only where the CPU
// has AVX2, FMA and F16C, Int4Isa::Avx2's requirements).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "math/half_float.h"

namespace q3vl::kernels {

void halves_to_floats_f16c(const std::uint16_t* from, float* to, std::size_t count) {
  std::size_t i = 0;
  for (; i + 8 <= count; i += 8) _mm256_storeu_ps(to + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(from + i))));
  for (; i < count; ++i) to[i] = fp16_to_float(from[i]);
}

void floats_to_halves_f16c(const float* from, std::uint16_t* to, std::size_t count) {
  std::size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(to + i), _mm256_cvtps_ph(_mm256_loadu_ps(from + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  for (; i < count; ++i) to[i] = float_to_fp16(from[i]);
}

}  // namespace q3vl::kernels
