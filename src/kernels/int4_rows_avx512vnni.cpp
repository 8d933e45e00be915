// The row kernel for CPUs with AVX-512 VNNI (this file is compiled for it): one instruction per
// group of 32 for the unsigned x signed byte dot product into 32-bit lanes (256-bit registers).
#define Q3VL_INT4_ROWS int4_row_tiles_avx512vnni
#define Q3VL_INT4_REGISTERS 32
#define Q3VL_INT4_DOT(w, x) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (w), (x))
#define Q3VL_INT4_DOT2(w1, x1, w2, x2) _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), (w1), (x1)), (w2), (x2))
#include "kernels/int4_rows_simd.inc"
