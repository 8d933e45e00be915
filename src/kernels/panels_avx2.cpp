// The int4 row kernel for many tokens at once on CPUs with AVX2 (compiled with -mavx2 -mfma
// -mf16c): the panels of panels_avx512vnni.cpp (kernels/panel.h) in 256-bit registers, eight rows
// at a time. Without VNNI a product of unsigned and signed bytes is maddubs (pairs into 16 bits)
// then madd (into 32): all eight quads of a group are summed in 16 bits first (at most
// 8 * 2 * 15 * 127 = 30480, no saturation with 4-bit weights), so a group costs one widening, one
// conversion and two multiply-adds per eight rows and token. int8 weights (255 * 127 * 2 would
// saturate) are not taken here.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/int4_rows.h"
#include "kernels/panel.h"

namespace q3vl::kernels {
namespace {

// out[q] = {in[0]'s 32-bit value q, in[1]'s, in[2]'s, in[3]'s}.
inline void transpose4(const __m128i in[4], __m128i out[4]) {
  const __m128i t0 = _mm_unpacklo_epi32(in[0], in[1]), t1 = _mm_unpacklo_epi32(in[2], in[3]);
  const __m128i t2 = _mm_unpackhi_epi32(in[0], in[1]), t3 = _mm_unpackhi_epi32(in[2], in[3]);
  out[0] = _mm_unpacklo_epi64(t0, t1);
  out[1] = _mm_unpackhi_epi64(t0, t1);
  out[2] = _mm_unpacklo_epi64(t2, t3);
  out[3] = _mm_unpackhi_epi64(t2, t3);
}

template <typename Scale>
void fill_panel(const RowsJob& job, const Scale* scales_of_row0, std::int64_t row, std::int64_t groups, Panel& panel) {
  panel.rows = std::min<std::int64_t>(kPanelRows, job.rows - row);
  const std::size_t row_bytes = job.row_bytes();
  alignas(16) static constexpr std::uint8_t kNoWeights[16] = {};  // rows past the job's: zero weights, zero scales
  const __m128i low_nibbles = _mm_set1_epi8(0x0F);
  auto* quads = reinterpret_cast<std::uint8_t*>(panel.quads.data());
  for (std::int64_t g = 0; g < groups; ++g) {
    // Four rows at a time: their packed bytes split into nibbles, transposed so that value q of
    // the four rows lies together. Every group is 16 whole bytes (cols % 32 == 0, int4_rows_kernel).
    for (int i0 = 0; i0 < kPanelRows; i0 += 4) {
      __m128i low[4], high[4];
      for (int i = 0; i < 4; ++i) {
        const std::int64_t r = i0 + i;
        const std::uint8_t* bytes = r < panel.rows ? job.packed + static_cast<std::size_t>(row + r) * row_bytes + g * 16 : kNoWeights;
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes));
        low[i] = _mm_and_si128(packed, low_nibbles);
        high[i] = _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibbles);
      }
      __m128i low_quads[4], high_quads[4];
      transpose4(low, low_quads);
      transpose4(high, high_quads);
      std::uint8_t* at = quads + g * 8 * 64 + i0 * 4;
      for (int q = 0; q < 4; ++q) {
        _mm_store_si128(reinterpret_cast<__m128i*>(at + q * 64), low_quads[q]);
        _mm_store_si128(reinterpret_cast<__m128i*>(at + (q + 4) * 64), high_quads[q]);
      }
    }
    fill_panel_scales(job, scales_of_row0, row, g, panel);
  }
}

// Eight rows of the panel (`half` 0: rows 0-7, 1: rows 8-15) against kTokens tokens from `first`.
template <int kTokens>
void panel_tokens(const RowsJob& job, const Panel& panel, int half, std::int64_t row, std::int64_t first) {
  const QuantizedActivations& a = *job.activations;
  const TokenRows<kTokens> tokens(job, first);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[kTokens];
  for (int t = 0; t < kTokens; ++t) acc[t] = _mm256_setzero_ps();
  for (std::int64_t g = 0; g < a.groups; ++g) {
    const QuantizedActivations::Halves at = a.halves(g);
    __m256i sum16[kTokens];
    for (int t = 0; t < kTokens; ++t) sum16[t] = _mm256_setzero_si256();
    const SixtyFourBytes* quads = panel.quads.data() + g * 8;
#pragma GCC unroll 8
    for (int q = 0; q < 8; ++q) {
      const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(quads[q].bytes + 32 * half));
      const std::int64_t offset = q < 4 ? at.evens + 4 * q : at.odds + 4 * (q - 4);
#pragma GCC unroll 4
      for (int t = 0; t < kTokens; ++t) {
        std::int32_t four;
        std::memcpy(&four, tokens.values[t] + offset, sizeof(four));
        sum16[t] = _mm256_add_epi16(sum16[t], _mm256_maddubs_epi16(w, _mm256_set1_epi32(four)));
      }
    }
    const __m256 weight_scales = _mm256_load_ps(panel.scales[static_cast<std::size_t>(g)].values + 8 * half);
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) {
      const __m256 products = _mm256_cvtepi32_ps(_mm256_madd_epi16(sum16[t], ones));
      const __m256 sum = _mm256_fmsub_ps(products, _mm256_set1_ps(tokens.scales[t][g]), _mm256_set1_ps(tokens.offsets[t][g]));
      acc[t] = _mm256_fmadd_ps(sum, weight_scales, acc[t]);
    }
  }
  const std::int64_t rows = std::clamp<std::int64_t>(panel.rows - 8 * half, 0, 8);
  for (int t = 0; t < kTokens; ++t) {
    float* out = job.out + (first + t) * job.out_stride + row + 8 * half;
    if (rows == 8) {
      _mm256_storeu_ps(out, acc[t]);
    } else {
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, acc[t]);
      for (std::int64_t r = 0; r < rows; ++r) out[r] = lanes[r];  // no std::copy: see panel.h on shared code
    }
  }
}

}  // namespace

void int4_panels_avx2(const RowsJob& job) {
  run_panels(
      job, [&](const auto* scales, std::int64_t row, Panel& panel) { fill_panel(job, scales, row, job.activations->groups, panel); },
      [&](const Panel& panel, std::int64_t row, std::int64_t first, auto tokens) {
        for (int half = 0; half < 2 && 8 * half < panel.rows; ++half) panel_tokens<decltype(tokens)::value>(job, panel, half, row, first);
      });
}

}  // namespace q3vl::kernels
