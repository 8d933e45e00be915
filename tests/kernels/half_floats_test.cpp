// The runs of half-float conversions (kernels/half_floats.h) against math/half_float.h's scalar
// ones, on every instruction set this CPU runs: every one of the 65,536 halves widened, and floats
// narrowed to nearest-even (random values, every half exactly, and the ties halfway between two
// neighbouring halves), in runs whose lengths leave tails past the vector width.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/half_floats.h"
#include "kernels/int4_test_support.h"
#include "math/half_float.h"

namespace q3vl::kernels {
namespace {

TEST(HalfFloats, RunsConvertAsTheScalarConversionsOnEveryInstructionSet) {
  std::vector<std::uint16_t> halves(65536 + 5);  // every half, then five more: a tail
  for (std::size_t i = 0; i < halves.size(); ++i) halves[i] = static_cast<std::uint16_t>(i);
  std::vector<float> floats;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 30.0f);
  for (int i = 0; i < 100003; ++i) floats.push_back(normal(rng));
  for (std::uint32_t h = 0; h < 0x7C00u; ++h) {  // each finite positive half, the tie above it, and their negatives
    const float here = fp16_to_float(static_cast<std::uint16_t>(h)), next = fp16_to_float(static_cast<std::uint16_t>(h + 1));
    floats.push_back(here);
    floats.push_back(-here);
    if (h + 1 < 0x7C00u) floats.push_back(here + (next - here) / 2);
  }
  std::size_t checked = 0;
  for (const Int4Isa isa : kEveryInt4Isa) {
    if (!int4_isa_available(isa)) continue;
    std::vector<float> widened(halves.size());
    halves_to_floats(halves.data(), widened.data(), halves.size(), isa);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < halves.size(); ++i) {
      const float want = fp16_to_float(halves[i]);
      wrong += std::isnan(want) ? !std::isnan(widened[i]) : std::bit_cast<std::uint32_t>(widened[i]) != std::bit_cast<std::uint32_t>(want);
    }
    EXPECT_EQ(wrong, 0u) << to_string(isa) << ": halves widened";
    std::vector<std::uint16_t> narrowed(floats.size());
    floats_to_halves(floats.data(), narrowed.data(), floats.size(), isa);
    wrong = 0;
    for (std::size_t i = 0; i < floats.size(); ++i) wrong += narrowed[i] != float_to_fp16(floats[i]);
    EXPECT_EQ(wrong, 0u) << to_string(isa) << ": floats narrowed";
    ++checked;
  }
  EXPECT_GE(checked, 1u);  // the portable loop at least; here every set the CPU has
}

}  // namespace
}  // namespace q3vl::kernels
