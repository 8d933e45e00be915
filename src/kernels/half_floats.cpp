#include "kernels/half_floats.h"

#include "math/half_float.h"

namespace q3vl::kernels {

#if defined(Q3VL_X86_KERNELS)
// half_floats_f16c.cpp, compiled with F16C: whole runs of eight, then the rest one at a time.
void halves_to_floats_f16c(const std::uint16_t* from, float* to, std::size_t count);
void floats_to_halves_f16c(const float* from, std::uint16_t* to, std::size_t count);
#endif

void halves_to_floats(const std::uint16_t* from, float* to, std::size_t count, Int4Isa isa) {
#if defined(Q3VL_X86_KERNELS)
  if (usable_isa(isa) != Int4Isa::Portable) return halves_to_floats_f16c(from, to, count);
#endif
  for (std::size_t i = 0; i < count; ++i) to[i] = fp16_to_float(from[i]);
}

void floats_to_halves(const float* from, std::uint16_t* to, std::size_t count, Int4Isa isa) {
#if defined(Q3VL_X86_KERNELS)
  if (usable_isa(isa) != Int4Isa::Portable) return floats_to_halves_f16c(from, to, count);
#endif
  for (std::size_t i = 0; i < count; ++i) to[i] = float_to_fp16(from[i]);
}

}  // namespace q3vl::kernels
