// The panels (panels_256.inc) on CPUs with AVX-VNNI besides AVX2, FMA and F16C (compiled for
// them): 256-bit dpbusd.
#define Q3VL_PANELS_INT4 int4_panels_avxvnni
#define Q3VL_PANELS_INT8 int8_panels_avxvnni
#define Q3VL_PANELS_VNNI 1
#include "kernels/panels_256.inc"
