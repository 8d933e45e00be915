// The decode attention's loops for AVX2 with FMA and F16C (compiled with -mavx2 -mfma -mf16c; 8 floats a vector).
#define Q3VL_ATTEND_GROUP attend_group_avx2
#define Q3VL_LANES 8
#include "kernels/decode_attention_simd.inc"
