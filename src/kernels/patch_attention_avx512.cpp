// The patch attention's loops (16 lanes a vector; flags in src/CMakeLists.txt).
#define Q3VL_ATTEND_SEGMENT_HEAD attend_segment_head_avx512
#define Q3VL_LANES 16
#include "kernels/patch_attention_simd.inc"
