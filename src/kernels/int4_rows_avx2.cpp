// The row kernel for CPUs with AVX2, FMA and F16C (compiled with -mavx2 -mfma -mf16c): unsigned x
// signed bytes to 16-bit pair sums (at most 2 * 15 * 128, no saturation), then to 32-bit lanes.
#define Q3VL_INT4_ROWS int4_row_tiles_avx2
#define Q3VL_INT4_REGISTERS 16
#define Q3VL_INT4_DOT(w, x) _mm256_madd_epi16(_mm256_maddubs_epi16((w), (x)), _mm256_set1_epi16(1))
// Two products summed in 16 bits first (at most 2 * 2 * 15 * 128, still no saturation).
#define Q3VL_INT4_DOT2(w1, x1, w2, x2) \
  _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16((w1), (x1)), _mm256_maddubs_epi16((w2), (x2))), _mm256_set1_epi16(1))
#include "kernels/int4_rows_simd.inc"
