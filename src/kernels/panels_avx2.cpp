// The panels (panels_256.inc) on CPUs with AVX2, FMA and F16C (compiled for them): maddubs and madd.
#define Q3VL_PANELS_INT4 int4_panels_avx2
#define Q3VL_PANELS_INT8 int8_panels_avx2
#define Q3VL_PANELS_VNNI 0
#include "kernels/panels_256.inc"
