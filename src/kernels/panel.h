#pragma once
// The panel the many-token kernels (panels_avx512vnni.cpp, panels_avx2.cpp) multiply with: 16 weight
// rows of a call interleaved into a small buffer, rows in a vector register's lanes, and the loop
// over a call's panels and tokens. Each kernel fills and reads panels with its own instruction set.
// Only those files include this, each compiled for its instruction set (F16C included); the code
// here, types included (so the std::vector code instantiated for them too), has internal linkage, so
// that the linker never hands one kernel's copy, compiled for AVX-512, to the other.
#include <cstdint>
#include <type_traits>
#include <vector>

#include <immintrin.h>

#include "kernels/int4_rows.h"

namespace q3vl::kernels {
namespace {  // internal linkage for all of it, std::vector<Panel's parts> included (see above)

constexpr int kPanelRows = 16;

struct alignas(64) SixtyFourBytes {
  std::uint8_t bytes[64];
};
struct alignas(64) SixteenFloats {
  float values[16];
};

// quads[g * 8 + q] holds, for each row r (bytes 4r..4r+3), four weights of group g as unsigned
// bytes, in the order of QuantizedActivations' halves: int4, for q < 4 the low nibbles of packed
// bytes 4q..4q+3 (the group's values 8q, 8q+2, 8q+4, 8q+6), for q >= 4 the high nibbles of bytes
// 4(q-4).. (the odd values); int8, values 4q..4q+3 (on AVX2 as signed bytes, byte - 128). scales[g] holds
// each row's scale for group g's block (0 for rows past the call's). `rows`: how many of the 16 are
// the call's.
struct Panel {
  std::vector<SixtyFourBytes> quads;
  std::vector<SixteenFloats> scales;
  std::int64_t rows = 0;
};

// The panel's scales for group g: each of its rows' scale of g's block (float or half floats, as
// the job has them), 0 past the job's rows.
template <typename Scale>
void fill_panel_scales(const RowsJob& job, const Scale* scales_of_row0, std::int64_t row, std::int64_t g, Panel& panel) {
  float* lanes = panel.scales[static_cast<std::size_t>(g)].values;
  for (std::int64_t r = 0; r < kPanelRows; ++r) {
    if (r >= panel.rows) {
      lanes[r] = 0.0f;
      continue;
    }
    const Scale* s = scales_of_row0 + (row + r) * job.blocks_per_row + g / (job.block / 32);
    if constexpr (std::is_same_v<Scale, float>) {
      lanes[r] = *s;
    } else {
      lanes[r] = _cvtsh_ss(*s);
    }
  }
}

// Where kTokens tokens' quantized activations lie (the job's tokens from `first`).
template <int kTokens>
struct TokenRows {
  const std::int8_t* values[kTokens];
  const float* scales[kTokens];
  const float* offsets[kTokens];

  TokenRows(const RowsJob& job, std::int64_t first) {
    const QuantizedActivations& a = *job.activations;
    for (int t = 0; t < kTokens; ++t) {
      const std::int64_t r = job.tokens[first + t];
      values[t] = a.row_values(r);
      scales[t] = a.scales.data() + r * a.groups;
      offsets[t] = a.offsets.data() + r * a.groups;
    }
  }
};

// The job's rows 16 at a time: fill(row, panel) interleaves rows [row, row + 16) into the panel,
// then multiply(panel, row, first, std::integral_constant<int, K>{}) takes K tokens from `first`:
// four at a time (each weight register then serves four multiply-adds), then the 1-3 left.
template <typename Fill, typename Multiply>
void for_each_panel(const RowsJob& job, Fill&& fill, Multiply&& multiply) {
  Panel panel;
  panel.quads.resize(static_cast<std::size_t>(job.activations->groups * 8));
  panel.scales.resize(static_cast<std::size_t>(job.activations->groups));
  for (std::int64_t row = 0; row < job.rows; row += kPanelRows) {
    fill(row, panel);
    std::int64_t t = 0;
    for (; t + 4 <= job.token_count; t += 4) multiply(panel, row, t, std::integral_constant<int, 4>{});
    switch (job.token_count - t) {
      case 3: multiply(panel, row, t, std::integral_constant<int, 3>{}); break;
      case 2: multiply(panel, row, t, std::integral_constant<int, 2>{}); break;
      case 1: multiply(panel, row, t, std::integral_constant<int, 1>{}); break;
      default: break;
    }
  }
}

// A panel kernel's entry: for_each_panel with the job's scales, float or half floats (kernels
// templated on the scale type: fill(job, scales, row, panel) and multiply as for_each_panel's).
template <typename Fill, typename Multiply>
void run_panels(const RowsJob& job, Fill&& fill, Multiply&& multiply) {
  const auto with = [&](const auto* scales) {
    for_each_panel(job, [&](std::int64_t row, Panel& panel) { fill(scales, row, panel); }, multiply);
  };
  if (job.scales != nullptr) {
    with(job.scales);
  } else {
    with(job.half_scales);
  }
}

}  // namespace

}  // namespace q3vl::kernels
