#pragma once
// The panel the many-token kernels (panels_avx512vnni.cpp, panels_avx2.cpp) multiply with: 16 weight
// rows of a call interleaved into a small buffer, rows in a vector register's lanes. Data only: each
// kernel fills and reads it with its own instruction set.
#include <cstdint>
#include <vector>

namespace q3vl::kernels {

inline constexpr int kPanelRows = 16;

struct alignas(64) SixtyFourBytes {
  std::uint8_t bytes[64];
};
struct alignas(64) SixteenFloats {
  float values[16];
};

// quads[g * 8 + q] holds, for each row r (bytes 4r..4r+3), four weights of group g as unsigned
// bytes, in the order of QuantizedActivations' halves: int4, for q < 4 the low nibbles of packed
// bytes 4q..4q+3 (the group's values 8q, 8q+2, 8q+4, 8q+6), for q >= 4 the high nibbles of bytes
// 4(q-4).. (the odd values); int8, values 4q..4q+3. scales[g] holds each row's scale for group g's
// block (0 for rows past the call's). `rows`: how many of the 16 are the call's.
struct Panel {
  std::vector<SixtyFourBytes> quads;
  std::vector<SixteenFloats> scales;
  std::int64_t rows = 0;
};

}  // namespace q3vl::kernels
