#include "kernels/decode_attention.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/vector_math.h"
#include "q3vl/error.h"

namespace q3vl::kernels {
namespace {

using namespace vector_math;

template <int L>
Q3VL_INLINE float dot(const float* a, const float* b, std::int64_t n) {
  Floats<L> acc0{}, acc1{};
  std::int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    acc0 += load<L>(a + i) * load<L>(b + i);
    acc1 += load<L>(a + i + L) * load<L>(b + i + L);
  }
  for (; i + L <= n; i += L) acc0 += load<L>(a + i) * load<L>(b + i);
  float sum = lanes_sum<L>(acc0 + acc1);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// probs[0..n) = softmax(probs), in place.
template <int L>
Q3VL_INLINE void softmax(float* probs, std::int64_t n) {
  float top = probs[0];
  for (std::int64_t i = 1; i < n; ++i) top = std::max(top, probs[i]);
  Floats<L> sums{};
  std::int64_t i = 0;
  for (; i + L <= n; i += L) {
    const Floats<L> e = exp_of<L>(load<L>(probs + i) - top);
    store<L>(probs + i, e);
    sums += e;
  }
  float sum = lanes_sum<L>(sums);
  if (i < n) {  // the tail through a zero-padded register: the same exp as the others
    float tail[L] = {};
    std::memcpy(tail, probs + i, static_cast<std::size_t>(n - i) * sizeof(float));
    const Floats<L> e = exp_of<L>(load<L>(tail) - top);
    for (std::int64_t j = 0; j < n - i; ++j) sum += probs[i + j] = e[j];
  }
  const float inverse = 1.0f / sum;
  for (std::int64_t j = 0; j < n; ++j) probs[j] *= inverse;
}

// out[0..D) = sum over t < n of probs[t] * rows[t * D ..], four vectors of columns at a time.
template <int L>
Q3VL_INLINE void weighted_rows(const float* probs, const float* rows, std::int64_t n, std::int64_t D, float* out) {
  std::int64_t d = 0;
  for (; d + 4 * L <= D; d += 4 * L) {
    Floats<L> acc0{}, acc1{}, acc2{}, acc3{};
    for (std::int64_t t = 0; t < n; ++t) {
      const float* row = rows + t * D + d;
      const Floats<L> p = splat<L>(probs[t]);
      acc0 += p * load<L>(row);
      acc1 += p * load<L>(row + L);
      acc2 += p * load<L>(row + 2 * L);
      acc3 += p * load<L>(row + 3 * L);
    }
    store<L>(out + d, acc0);
    store<L>(out + d + L, acc1);
    store<L>(out + d + 2 * L, acc2);
    store<L>(out + d + 3 * L, acc3);
  }
  for (; d < D; ++d) {
    float sum = 0.0f;
    for (std::int64_t t = 0; t < n; ++t) sum += probs[t] * rows[t * D + d];
    out[d] = sum;
  }
}

// Two query heads at once when the head size D is a multiple of 4 L (Qwen3-VL's is 128): each key
// and value vector loaded serves both heads. kChunks vectors of the two heads' queries (for the
// scores) or sums (for the weighted values) are held in registers: all of D where 32 registers
// hold them (AVX-512), slices of D otherwise.
template <int L>
constexpr int kHeldChunks = L == 16 ? 8 : 4;

template <int L, int kChunks>
Q3VL_INLINE void scores_of_two_heads(const float* q0, const float* q1, const float* keys, std::int64_t n, std::int64_t D, float* s0, float* s1) {
  std::fill(s0, s0 + n, 0.0f);
  std::fill(s1, s1 + n, 0.0f);
  for (std::int64_t d = 0; d < D; d += kChunks * L) {
    Floats<L> a[kChunks], b[kChunks];
    for (int c = 0; c < kChunks; ++c) {
      a[c] = load<L>(q0 + d + c * L);
      b[c] = load<L>(q1 + d + c * L);
    }
    for (std::int64_t t = 0; t < n; ++t) {
      const float* k = keys + t * D + d;
      Floats<L> x0{}, x1{}, y0{}, y1{};  // two multiply-add chains per head
      for (int c = 0; c < kChunks; c += 2) {
        const Floats<L> k0 = load<L>(k + c * L), k1 = load<L>(k + (c + 1) * L);
        x0 += a[c] * k0;
        y0 += b[c] * k0;
        x1 += a[c + 1] * k1;
        y1 += b[c + 1] * k1;
      }
      s0[t] += lanes_sum<L>(x0 + x1);
      s1[t] += lanes_sum<L>(y0 + y1);
    }
  }
}

template <int L, int kChunks>
Q3VL_INLINE void weighted_rows_of_two_heads(const float* p0, const float* p1, const float* rows, std::int64_t n, std::int64_t D, float* o0,
                                            float* o1) {
  for (std::int64_t d = 0; d < D; d += kChunks * L) {
    Floats<L> a[kChunks] = {}, b[kChunks] = {};
    for (std::int64_t t = 0; t < n; ++t) {
      const float* row = rows + t * D + d;
      const Floats<L> w0 = splat<L>(p0[t]), w1 = splat<L>(p1[t]);
      for (int c = 0; c < kChunks; ++c) {
        const Floats<L> v = load<L>(row + c * L);
        a[c] += w0 * v;
        b[c] += w1 * v;
      }
    }
    for (int c = 0; c < kChunks; ++c) {
      store<L>(o0 + d + c * L, a[c]);
      store<L>(o1 + d + c * L, b[c]);
    }
  }
}

// One sequence's one KV head: append its new key and value, then every query head of its group.
template <int L>
Q3VL_INLINE void attend_group(const DecodeAttention& s, std::int64_t b, std::int64_t j, std::vector<float>& probs) {
  const std::int64_t D = s.head_dim, group = s.num_heads / s.kv_heads;
  const std::int64_t cached = s.cached[static_cast<std::size_t>(b)], n = cached + 1;
  const std::size_t row_bytes = static_cast<std::size_t>(D) * sizeof(float);
  float* keys = s.present_key + ((b * s.kv_heads + j) * s.capacity) * D;
  float* values = s.present_value + ((b * s.kv_heads + j) * s.capacity) * D;
  if (s.past_key != s.present_key) {
    std::memcpy(keys, s.past_key + ((b * s.kv_heads + j) * s.past_capacity) * D, static_cast<std::size_t>(cached) * row_bytes);
  }
  if (s.past_value != s.present_value) {
    std::memcpy(values, s.past_value + ((b * s.kv_heads + j) * s.past_capacity) * D, static_cast<std::size_t>(cached) * row_bytes);
  }
  std::memcpy(keys + cached * D, s.key + (b * s.kv_heads + j) * D, row_bytes);
  std::memcpy(values + cached * D, s.value + (b * s.kv_heads + j) * D, row_bytes);

  probs.resize(static_cast<std::size_t>(group * (n + D)));
  float* scaled_queries = probs.data() + group * n;  // [group, D]
  for (std::int64_t g = 0; g < group; ++g) {
    const float* q = s.query + (b * s.num_heads + j * group + g) * D;
    for (std::int64_t d = 0; d < D; ++d) scaled_queries[g * D + d] = q[d] * s.scale;
  }
  float* out = s.out + (b * s.num_heads + j * group) * D;
  constexpr int kChunks = kHeldChunks<L>;
  if (group % 2 == 0 && D % (kChunks * L) == 0) {
    for (std::int64_t g = 0; g < group; g += 2) {
      float* p0 = probs.data() + g * n;
      float* p1 = p0 + n;
      scores_of_two_heads<L, kChunks>(scaled_queries + g * D, scaled_queries + (g + 1) * D, keys, n, D, p0, p1);
      softmax<L>(p0, n);
      softmax<L>(p1, n);
      weighted_rows_of_two_heads<L, kChunks>(p0, p1, values, n, D, out + g * D, out + (g + 1) * D);
    }
    return;
  }
  // Any other shape: key by key, every query head of the group, so a key row comes from memory once.
  for (std::int64_t t = 0; t < n; ++t) {
    for (std::int64_t g = 0; g < group; ++g) probs[static_cast<std::size_t>(g * n + t)] = dot<L>(scaled_queries + g * D, keys + t * D, D);
  }
  for (std::int64_t g = 0; g < group; ++g) {
    softmax<L>(probs.data() + g * n, n);
    weighted_rows<L>(probs.data() + g * n, values, n, D, out + g * D);
  }
}

using GroupKernel = void (*)(const DecodeAttention&, std::int64_t, std::int64_t, std::vector<float>&);

void attend_group_portable(const DecodeAttention& s, std::int64_t b, std::int64_t j, std::vector<float>& probs) { attend_group<4>(s, b, j, probs); }
#if defined(Q3VL_X86_KERNELS)
__attribute__((target("avx2,fma"))) void attend_group_avx2(const DecodeAttention& s, std::int64_t b, std::int64_t j, std::vector<float>& probs) {
  attend_group<8>(s, b, j, probs);
}
__attribute__((target("avx2,fma,avx512f"))) void attend_group_avx512(const DecodeAttention& s, std::int64_t b, std::int64_t j,
                                                                      std::vector<float>& probs) {
  attend_group<16>(s, b, j, probs);
}
#endif

GroupKernel group_kernel(Int4Isa isa) {
  switch (usable_isa(isa)) {
#if defined(Q3VL_X86_KERNELS)
    case Int4Isa::Avx512Vnni: return attend_group_avx512;
    case Int4Isa::Avx2: return attend_group_avx2;
#endif
    default: return attend_group_portable;
  }
}

}  // namespace

void check_decode_attention(const DecodeAttention& s) {
  const auto fail = [](const std::string& what) { throw InvalidInput("decode attention: " + what); };
  if (s.batch <= 0 || s.num_heads <= 0 || s.kv_heads <= 0 || s.head_dim <= 0 || s.num_heads % s.kv_heads != 0) {
    fail(std::to_string(s.num_heads) + " query heads, " + std::to_string(s.kv_heads) + " key/value heads of " + std::to_string(s.head_dim) +
         " (query heads must group evenly), batch " + std::to_string(s.batch));
  }
  if (s.query == nullptr || s.key == nullptr || s.value == nullptr || s.past_key == nullptr || s.past_value == nullptr ||
      s.present_key == nullptr || s.present_value == nullptr || s.out == nullptr) {
    fail("a tensor is missing");
  }
  if (static_cast<std::int64_t>(s.cached.size()) != s.batch) fail(std::to_string(s.cached.size()) + " cached lengths for a batch of " + std::to_string(s.batch));
  const bool in_place = s.past_key == s.present_key && s.past_value == s.present_value;
  for (std::size_t b = 0; b < s.cached.size(); ++b) {
    const std::int64_t cached = s.cached[b];
    if (cached < 0 || cached >= s.capacity || (!in_place && cached > s.past_capacity)) {
      fail("sequence " + std::to_string(b) + " has " + std::to_string(cached) + " cached positions; the cache holds " +
           std::to_string(s.past_capacity) + " and room for " + std::to_string(s.capacity));
    }
  }
}

void run_decode_attention(const DecodeAttention& s, const ParallelFor& parallel, Int4Isa isa) {
  check_decode_attention(s);
  const GroupKernel kernel = group_kernel(isa);
  parallel(static_cast<std::size_t>(s.batch * s.kv_heads), [&](std::size_t task) {
    std::vector<float> probs;
    kernel(s, static_cast<std::int64_t>(task) / s.kv_heads, static_cast<std::int64_t>(task) % s.kv_heads, probs);
  });
}

}  // namespace q3vl::kernels
