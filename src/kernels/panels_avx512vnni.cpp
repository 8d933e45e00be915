// The row kernel for many tokens at once (a prompt, an image) on CPUs with AVX-512 VNNI (compiled for
// it), for int4 and int8 weights. Where the int4 row tiles (int4_rows_simd.inc) put the 32 values of
// a group across a register's lanes, and so convert and scale every (row, token, group) product on
// its own, this puts 16 weight rows in the 16 lanes: one dpbusd takes four values of every row
// against one token's four activations (broadcast), and a group's conversion and scaling is done
// once for 16 rows. That needs the rows' bytes interleaved, which this does per call into a small
// buffer (a "panel": 16 rows' weights as unsigned bytes), reused by every token of the call.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/int4_rows.h"
#include "kernels/panel.h"

namespace q3vl::kernels {
namespace {

// 4 x 4 transposes of 32-bit values within each 128-bit lane: lane k of out[q] = {lane k of in[0]'s
// value q, in[1]'s, in[2]'s, in[3]'s}. (The maskz forms with every lane set are the plain
// instructions; GCC 12 warns on the plain intrinsics' undefined pass-through operand.)
inline void transpose4(const __m512i in[4], __m512i out[4]) {
  constexpr auto all16 = static_cast<__mmask16>(0xFFFF);
  constexpr auto all8 = static_cast<__mmask8>(0xFF);
  const __m512i t0 = _mm512_maskz_unpacklo_epi32(all16, in[0], in[1]), t1 = _mm512_maskz_unpacklo_epi32(all16, in[2], in[3]);
  const __m512i t2 = _mm512_maskz_unpackhi_epi32(all16, in[0], in[1]), t3 = _mm512_maskz_unpackhi_epi32(all16, in[2], in[3]);
  out[0] = _mm512_maskz_unpacklo_epi64(all8, t0, t1);
  out[1] = _mm512_maskz_unpackhi_epi64(all8, t0, t1);
  out[2] = _mm512_maskz_unpacklo_epi64(all8, t2, t3);
  out[3] = _mm512_maskz_unpackhi_epi64(all8, t2, t3);
}

template <typename Scale>
void fill_panel(const RowsJob& job, const Scale* scales_of_row0, std::int64_t row, std::int64_t groups, Panel& panel) {
  panel.rows = std::min<std::int64_t>(kPanelRows, job.rows - row);
  const std::size_t row_bytes = job.row_bytes();
  const std::int64_t group_bytes = 32 * job.bits / 8;
  alignas(16) static constexpr std::uint8_t kNoWeights[32] = {};  // rows past the job's: zero weights, zero scales
  const std::uint8_t* rows[kPanelRows];
  for (std::int64_t r = 0; r < kPanelRows; ++r) rows[r] = r < panel.rows ? job.packed + static_cast<std::size_t>(row + r) * row_bytes : nullptr;
  const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
  for (std::int64_t g = 0; g < groups; ++g) {
    // Register j holds 16 bytes of the group of rows j, j + 4, j + 8, j + 12 in its four 128-bit
    // lanes, so that transposing within lanes leaves value q of rows 0..15 in order: for int4 its
    // packed bytes, then split into low and high nibbles; for int8 its first and then its second
    // 16 bytes. A group of the last row may be short only when cols is not a multiple of 32, which
    // the vector kernels do not take (int4_rows_kernel), so every group is whole.
    const auto four_rows = [&](int j, std::int64_t skip) {
      const auto bytes_of_row = [&](int r) {
        return _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r] != nullptr ? rows[r] + g * group_bytes + skip : kNoWeights));
      };
      // Lane numbers are immediates: spelled out, so that unoptimized builds compile too.
      __m512i four = _mm512_zextsi128_si512(bytes_of_row(j));
      four = _mm512_inserti32x4(four, bytes_of_row(j + 4), 1);
      four = _mm512_inserti32x4(four, bytes_of_row(j + 8), 2);
      return _mm512_inserti32x4(four, bytes_of_row(j + 12), 3);
    };
    __m512i low[4], high[4];
    for (int j = 0; j < 4; ++j) {
      if (job.bits == 8) {
        low[j] = four_rows(j, 0);
        high[j] = four_rows(j, 16);
      } else {
        const __m512i packed = four_rows(j, 0);
        low[j] = _mm512_and_si512(packed, low_nibbles);
        high[j] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low_nibbles);
      }
    }
    SixtyFourBytes* quads = panel.quads.data() + g * 8;
    __m512i transposed[4];
    transpose4(low, transposed);
    for (int q = 0; q < 4; ++q) _mm512_store_si512(quads[q].bytes, transposed[q]);
    transpose4(high, transposed);
    for (int q = 0; q < 4; ++q) _mm512_store_si512(quads[q + 4].bytes, transposed[q]);
    fill_panel_scales(job, scales_of_row0, row, g, panel);
  }
}

// kTokens tokens from position `first` of the job against a panel: per group, eight dpbusd per
// token into 16 row sums, then (sum * activation scale - zero point share) * weight scale added to
// the token's 16 results.
template <int kTokens>
void panel_tokens(const RowsJob& job, const Panel& panel, std::int64_t row, std::int64_t first) {
  const QuantizedActivations& a = *job.activations;
  const TokenRows<kTokens> tokens(job, first);
  __m512 acc[kTokens];
  for (int t = 0; t < kTokens; ++t) acc[t] = _mm512_setzero_ps();
  for (std::int64_t g = 0; g < a.groups; ++g) {
    const QuantizedActivations::Halves at = a.halves(g);
    __m512i dot[kTokens];
    for (int t = 0; t < kTokens; ++t) dot[t] = _mm512_setzero_si512();
    const SixtyFourBytes* quads = panel.quads.data() + g * 8;
#pragma GCC unroll 8
    for (int q = 0; q < 8; ++q) {
      const __m512i w = _mm512_load_si512(quads[q].bytes);
      const std::int64_t offset = q < 4 ? at.evens + 4 * q : at.odds + 4 * (q - 4);
#pragma GCC unroll 4
      for (int t = 0; t < kTokens; ++t) {
        std::int32_t four;
        std::memcpy(&four, tokens.values[t] + offset, sizeof(four));
        dot[t] = _mm512_dpbusd_epi32(dot[t], w, _mm512_set1_epi32(four));
      }
    }
    const __m512 weight_scales = _mm512_load_ps(panel.scales[static_cast<std::size_t>(g)].values);
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) {
      // maskz with every lane: the plain conversion (see transpose4).
      const __m512 products = _mm512_maskz_cvtepi32_ps(static_cast<__mmask16>(0xFFFF), dot[t]);
      const __m512 sum = _mm512_fmsub_ps(products, _mm512_set1_ps(tokens.scales[t][g]), _mm512_set1_ps(tokens.offsets[t][g]));
      acc[t] = _mm512_fmadd_ps(sum, weight_scales, acc[t]);
    }
  }
  const auto lanes = static_cast<__mmask16>((1u << panel.rows) - 1u);
  for (int t = 0; t < kTokens; ++t) _mm512_mask_storeu_ps(job.out + (first + t) * job.out_stride + row, lanes, acc[t]);
}

}  // namespace

void rows_panels_avx512vnni(const RowsJob& job) {
  run_panels(
      job, [&](const auto* scales, std::int64_t row, Panel& panel) { fill_panel(job, scales, row, job.activations->groups, panel); },
      [&](const Panel& panel, std::int64_t row, std::int64_t first, auto tokens) { panel_tokens<decltype(tokens)::value>(job, panel, row, first); });
}

}  // namespace q3vl::kernels
