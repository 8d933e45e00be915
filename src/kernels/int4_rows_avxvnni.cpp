// The row kernel for CPUs with AVX-VNNI (256-bit dpbusd without AVX-512; compiled for it with AVX2,
// FMA and F16C): one instruction per group of 32 for the unsigned x signed byte dot product into
// 32-bit lanes, as the AVX-512 VNNI kernel's, in AVX2's 16 registers.
#define Q3VL_INT4_ROWS int4_row_tiles_avxvnni
#define Q3VL_INT4_REGISTERS 16
#define Q3VL_INT4_DOT(w, x) _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), (w), (x))
#define Q3VL_INT4_DOT2(w1, x1, w2, x2) _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), (w1), (x1)), (w2), (x2))
#include "kernels/int4_rows_simd.inc"
