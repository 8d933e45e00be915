#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "math/half_float.h"

namespace q3vl {
namespace {

TEST(HalfFloat, Fp16RoundTripsEveryBitPattern) {
  for (std::uint32_t bits = 0; bits < 65536; ++bits) {
    const auto h = static_cast<std::uint16_t>(bits);
    const float f = fp16_to_float(h);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_float(float_to_fp16(f))));
      continue;
    }
    ASSERT_EQ(float_to_fp16(f), h) << "bits " << bits;
  }
}

TEST(HalfFloat, Bf16RoundTripsEveryBitPattern) {
  for (std::uint32_t bits = 0; bits < 65536; ++bits) {
    const auto b = static_cast<std::uint16_t>(bits);
    const float f = bf16_to_float(b);
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_bf16(f), b) << "bits " << bits;
  }
}

TEST(HalfFloat, Bf16RoundsHalfwayToEven) {
  // Every value exactly between two bf16 neighbours must go to the one with an even mantissa.
  for (std::uint32_t upper = 0x3f80; upper < 0x3fa0; ++upper) {
    const float midpoint = std::bit_cast<float>((upper << 16) | 0x8000u);
    const std::uint16_t expected = (upper & 1u) ? static_cast<std::uint16_t>(upper + 1) : static_cast<std::uint16_t>(upper);
    EXPECT_EQ(float_to_bf16(midpoint), expected);
    // Just above the midpoint always rounds up.
    EXPECT_EQ(float_to_bf16(std::bit_cast<float>((upper << 16) | 0x8001u)), upper + 1);
  }
}

TEST(HalfFloat, Fp16RoundsHalfwayToEvenAndOverflowsToInfinity) {
  for (std::uint16_t h = 0x3c00; h < 0x3c20; ++h) {
    const float low = fp16_to_float(h);
    const float high = fp16_to_float(static_cast<std::uint16_t>(h + 1));
    const float midpoint = (low + high) / 2;  // exact in float
    EXPECT_EQ(float_to_fp16(midpoint), (h & 1u) ? h + 1 : h);
  }
  EXPECT_TRUE(std::isinf(fp16_to_float(float_to_fp16(1e6f))));
  // Subnormal halves survive the trip through float.
  EXPECT_EQ(float_to_fp16(fp16_to_float(0x0001)), 0x0001);
}

}  // namespace
}  // namespace q3vl
