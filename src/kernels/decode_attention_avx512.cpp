// The decode attention's loops for AVX-512 (compiled with -mavx512f and AVX2's flags; 16 floats a vector).
#define Q3VL_ATTEND_GROUP attend_group_avx512
#define Q3VL_LANES 16
#include "kernels/decode_attention_simd.inc"
