// The patch attention's loops (4 lanes a vector; flags in src/CMakeLists.txt).
#define Q3VL_ATTEND_SEGMENT_HEAD attend_segment_head_portable
#define Q3VL_LANES 4
#include "kernels/patch_attention_simd.inc"
