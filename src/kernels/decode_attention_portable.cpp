// The decode attention's loops in the baseline instruction set, for CPUs without AVX2 (4 floats a vector).
#define Q3VL_ATTEND_GROUP attend_group_portable
#define Q3VL_LANES 4
#include "kernels/decode_attention_simd.inc"
