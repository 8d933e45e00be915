// The patch attention's loops (8 lanes a vector; flags in src/CMakeLists.txt).
#define Q3VL_ATTEND_SEGMENT_HEAD attend_segment_head_avx2
#define Q3VL_LANES 8
#include "kernels/patch_attention_simd.inc"
