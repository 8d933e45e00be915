#include "kernels/int4_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(Q3VL_X86_KERNELS)
#include <immintrin.h>
#endif

#include "math/half_float.h"
#include "q3vl/error.h"

namespace q3vl::kernels {

void QuantizedActivations::reset(std::int64_t rows, std::int64_t columns, std::int64_t group_size, std::int64_t bits_of_weights,
                                 Int4Isa isa) {
#if defined(Q3VL_X86_KERNELS)
  // A short last group only for int8 weights: int4's group halves would not fit in it.
  vector_quantizer = group_size == 32 && (columns % 32 == 0 || bits_of_weights == 8) && usable_isa(isa) != Int4Isa::Portable;
#else
  vector_quantizer = false;
  (void)isa;
#endif
  cols = columns;
  group = group_size;
  weight_bits = bits_of_weights;
  groups = (columns + group_size - 1) / group_size;
  values.assign(static_cast<std::size_t>(rows * groups * group), 0);
  scales.assign(static_cast<std::size_t>(rows * groups), 0.0f);
  offsets.assign(static_cast<std::size_t>(rows * groups), 0.0f);
}

namespace {

// One group's largest magnitude and its scales, as every quantizer computes them.
struct GroupScale {
  float scale, inverse;
};
GroupScale group_scale(float largest) { return {largest / 127.0f, largest > 0.0f ? 127.0f / largest : 0.0f}; }
// The weights' zero point: 8 for int4, 128 for int8 (MatMulNBits' unsigned layouts).
float weight_zero_point(std::int64_t weight_bits) { return weight_bits == 8 ? 128.0f : 8.0f; }

void quantize_portable(QuantizedActivations& a, std::int64_t row, const float* x) {
  std::int8_t* out = a.values.data() + row * a.groups * a.group;
  for (std::int64_t g = 0; g < a.groups; ++g) {
    const std::int64_t start = g * a.group;
    const std::int64_t length = std::min(a.group, a.cols - start);
    float largest = 0.0f;
    for (std::int64_t i = 0; i < length; ++i) largest = std::max(largest, std::fabs(x[start + i]));
    const GroupScale s = group_scale(largest);
    const QuantizedActivations::Halves at = a.halves(g);
    std::int32_t sum = 0;
    for (std::int64_t i = 0; i < length; ++i) {
      const auto v = static_cast<std::int8_t>(std::clamp(std::nearbyint(x[start + i] * s.inverse), -127.0f, 127.0f));
      out[a.weight_bits == 8 ? start + i : (i % 2 == 0 ? at.evens : at.odds) + i / 2] = v;
      sum += v;
    }
    const float zero_point = weight_zero_point(a.weight_bits);
    a.scales[static_cast<std::size_t>(row * a.groups + g)] = s.scale;
    a.offsets[static_cast<std::size_t>(row * a.groups + g)] = zero_point * static_cast<float>(sum) * s.scale;
  }
}

#if defined(Q3VL_X86_KERNELS)
// Groups of 32 with AVX2: the same arithmetic as quantize_portable, element for element (the
// magnitude's maximum, one multiply, rounding to nearest even, the clamp), so the bytes, scales and
// offsets are bit-identical; 8 lanes serve every x86 kernel (the quantizer is a small share of a
// prompt's time once it is not scalar).
__attribute__((target("avx2,fma"))) void quantize_groups_of_32_avx2(QuantizedActivations& a, std::int64_t row, const float* x) {
  std::int8_t* out = a.values.data() + row * a.groups * 32;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 low = _mm256_set1_ps(-127.0f), high = _mm256_set1_ps(127.0f);
  // After the two packs each 128-bit lane holds 4 values of each of the four vectors; these put
  // them back in order (32-bit pieces 0, 4, 1, 5, ...).
  const __m256i in_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  // Within each 16-byte lane: its even-offset values, then its odd-offset ones.
  const __m256i evens_then_odds = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,  //
                                                   0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const float zero_point = weight_zero_point(a.weight_bits);
  alignas(32) float short_group[32];  // a short last group (int8 only), padded with zeros
  for (std::int64_t g = 0; g < a.groups; ++g) {
    const float* v = x + g * 32;
    if (const std::int64_t present = a.cols - g * 32; present < 32) {
      std::memset(short_group, 0, sizeof short_group);
      std::memcpy(short_group, v, static_cast<std::size_t>(present) * sizeof(float));
      v = short_group;
    }
    __m256 part[4];
    __m256 largest = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      part[k] = _mm256_loadu_ps(v + 8 * k);
      largest = _mm256_max_ps(_mm256_andnot_ps(sign, part[k]), largest);  // a NaN lane keeps `largest`, as std::max does
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(largest), _mm256_extractf128_ps(largest, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const GroupScale s = group_scale(_mm_cvtss_f32(m));
    const __m256 inverse = _mm256_set1_ps(s.inverse);
    __m256i q[4];
    __m256i sum = _mm256_setzero_si256();
    for (int k = 0; k < 4; ++k) {
      const __m256 rounded = _mm256_round_ps(_mm256_mul_ps(part[k], inverse), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q[k] = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(rounded, low), high));
      sum = _mm256_add_epi32(sum, q[k]);
    }
    const __m256i bytes =
        _mm256_permutevar8x32_epi32(_mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])), in_order);
    if (a.weight_bits == 8) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + g * 32), bytes);
    } else {
      const __m256i split = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(bytes, evens_then_odds), 0xD8);  // evens of both lanes, then odds
      const QuantizedActivations::Halves at = a.halves(g);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + at.evens), _mm256_castsi256_si128(split));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + at.odds), _mm256_extracti128_si256(split, 1));
    }
    __m128i total = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    total = _mm_add_epi32(total, _mm_shuffle_epi32(total, 0x4E));
    total = _mm_add_epi32(total, _mm_shuffle_epi32(total, 0xB1));
    a.scales[static_cast<std::size_t>(row * a.groups + g)] = s.scale;
    a.offsets[static_cast<std::size_t>(row * a.groups + g)] = zero_point * static_cast<float>(_mm_cvtsi128_si32(total)) * s.scale;
  }
}
#endif

}  // namespace

void QuantizedActivations::quantize(std::int64_t row, const float* x) {
#if defined(Q3VL_X86_KERNELS)
  if (vector_quantizer) return quantize_groups_of_32_avx2(*this, row, x);
#endif
  quantize_portable(*this, row, x);
}

void point_at_rows(RowsJob& job, const Int4Matrices& m, std::int64_t e, std::int64_t first) {
  job.blocks_per_row = (m.cols + m.block - 1) / m.block;
  const std::int64_t row = e * m.rows + first;
  job.packed = m.packed + static_cast<std::size_t>(row) * static_cast<std::size_t>(m.cols / 2);
  job.scales = m.scales != nullptr ? m.scales + row * job.blocks_per_row : nullptr;
  job.half_scales = m.half_scales != nullptr ? m.half_scales + row * job.blocks_per_row : nullptr;
  job.cols = m.cols;
  job.block = m.block;
}

void int4_rows_portable(const RowsJob& job) {
  const QuantizedActivations& a = *job.activations;
  const std::size_t row_bytes = job.row_bytes();
  for (std::int64_t t = 0; t < job.token_count; ++t) {
    const std::int64_t token = job.tokens[t];
    const std::int8_t* x = a.row_values(token);
    const float* x_scales = a.scales.data() + token * a.groups;
    const float* x_offsets = a.offsets.data() + token * a.groups;
    for (std::int64_t r = 0; r < job.rows; ++r) {
      const std::uint8_t* w = job.packed + static_cast<std::size_t>(r) * row_bytes;
      const std::int64_t first_scale = r * job.blocks_per_row;
      float total = 0.0f;
      for (std::int64_t g = 0; g < a.groups; ++g) {
        const std::int64_t start = g * a.group;
        const std::int64_t length = std::min(a.group, a.cols - start);
        const QuantizedActivations::Halves at = a.halves(g);
        std::int32_t dot = 0;
        if (job.bits == 8) {
          for (std::int64_t j = 0; j < length; ++j) dot += w[start + j] * x[start + j];
        } else {
          const std::uint8_t* bytes = w + start / 2;
          for (std::int64_t j = 0; j < length / 2; ++j) dot += (bytes[j] & 0x0F) * x[at.evens + j] + (bytes[j] >> 4) * x[at.odds + j];
        }
        const std::int64_t scale_index = first_scale + start / job.block;
        const float s = job.scales != nullptr ? job.scales[scale_index] : fp16_to_float(job.half_scales[scale_index]);
        total += static_cast<float>(dot) * (s * x_scales[g]) - s * x_offsets[g];
      }
      job.out[t * job.out_stride + r] = total;
    }
  }
}

#if defined(Q3VL_X86_KERNELS)
namespace {

// The row tiles below kPanelTokens tokens, the panels from there on.
template <RowsKernel kTiles, RowsKernel kPanels, std::int64_t kPanelTokens>
void tiles_or_panels(const RowsJob& job) {
  if (job.token_count >= kPanelTokens) {
    kPanels(job);
  } else {
    kTiles(job);
  }
}

}  // namespace
#endif

Int4Isa usable_isa(Int4Isa isa) {
  if (isa == Int4Isa::Best) {
    isa = int4_isa_available(Int4Isa::Avx512Vnni) ? Int4Isa::Avx512Vnni
          : int4_isa_available(Int4Isa::AvxVnni)  ? Int4Isa::AvxVnni
          : int4_isa_available(Int4Isa::Avx2)     ? Int4Isa::Avx2
                                                  : Int4Isa::Portable;
  }
  if (!int4_isa_available(isa)) throw Unsupported("this CPU lacks " + to_string(isa));
  return isa;
}

RowsKernel int4_rows_kernel(Int4Isa isa, std::int64_t group) {
  isa = usable_isa(isa);
  if (group != 32 || isa == Int4Isa::Portable) return int4_rows_portable;
#if defined(Q3VL_X86_KERNELS)
  switch (isa) {
    case Int4Isa::Avx512Vnni: return tiles_or_panels<int4_row_tiles_avx512vnni, rows_panels_avx512vnni, kPanelTokensAvx512>;
    case Int4Isa::AvxVnni: return tiles_or_panels<int4_row_tiles_avxvnni, int4_panels_avxvnni, kPanelTokensAvxVnni>;
    default: return tiles_or_panels<int4_row_tiles_avx2, int4_panels_avx2, kPanelTokensAvx2>;
  }
#else
  return int4_rows_portable;
#endif
}

RowsKernel int8_rows_kernel(Int4Isa isa, [[maybe_unused]] std::int64_t group) {
  isa = usable_isa(isa);
#if defined(Q3VL_X86_KERNELS)
  if (group == 32 && isa == Int4Isa::Avx512Vnni) return rows_panels_avx512vnni;
  if (group == 32 && isa == Int4Isa::AvxVnni) return int8_panels_avxvnni;
  if (group == 32 && isa == Int4Isa::Avx2) return int8_panels_avx2;
#endif
  return int4_rows_portable;
}

bool int4_isa_available(Int4Isa isa) {
  switch (isa) {
    case Int4Isa::Best:
    case Int4Isa::Portable: return true;
#if defined(Q3VL_X86_KERNELS)
    case Int4Isa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case Int4Isa::AvxVnni:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
             __builtin_cpu_supports("avxvnni");
    case Int4Isa::Avx512Vnni:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
    case Int4Isa::Avx2:
    case Int4Isa::AvxVnni:
    case Int4Isa::Avx512Vnni: return false;
#endif
  }
  return false;
}

std::string to_string(Int4Isa isa) {
  switch (isa) {
    case Int4Isa::Best: return "best";
    case Int4Isa::Portable: return "portable C++";
    case Int4Isa::Avx2: return "AVX2";
    case Int4Isa::AvxVnni: return "AVX-VNNI";
    case Int4Isa::Avx512Vnni: return "AVX-512 VNNI";
  }
  return "?";
}

bool int8_kernels_fast() { return int4_isa_available(Int4Isa::Avx2); }

ParallelFor serial_for() {
  return [](std::size_t count, const std::function<void(std::size_t)>& task) {
    for (std::size_t i = 0; i < count; ++i) task(i);
  };
}

}  // namespace q3vl::kernels
