#pragma once
// Runs of IEEE half floats to float32 and back (round to nearest-even, as math/half_float.h), with
// F16C's conversions where the CPU has them: the half-float KV cache widened and narrowed around a
// prompt (ort/attention_op.h) is the whole cache of a layer, too much for one value at a time.
#include <cstddef>
#include <cstdint>

#include "kernels/int4_matrices.h"

namespace q3vl::kernels {

// Portable: one value at a time; Best and the x86 instruction sets: F16C where the CPU has it.
void halves_to_floats(const std::uint16_t* from, float* to, std::size_t count, Int4Isa isa = Int4Isa::Best);
void floats_to_halves(const float* from, std::uint16_t* to, std::size_t count, Int4Isa isa = Int4Isa::Best);

}  // namespace q3vl::kernels
