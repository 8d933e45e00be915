#include "kernels/decode_attention.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "q3vl/error.h"

namespace q3vl::kernels {

// The per-instruction-set builds of the loops (decode_attention_simd.inc): the portable one below,
// the others in decode_attention_avx2.cpp and decode_attention_avx512.cpp.
void attend_group_portable(const DecodeAttention& s, std::int64_t b, std::int64_t j, std::vector<float>& probs);
void attend_group_avx2(const DecodeAttention& s, std::int64_t b, std::int64_t j, std::vector<float>& probs);
void attend_group_avx512(const DecodeAttention& s, std::int64_t b, std::int64_t j, std::vector<float>& probs);

namespace {

using GroupKernel = void (*)(const DecodeAttention&, std::int64_t, std::int64_t, std::vector<float>&);

GroupKernel group_kernel(Int4Isa isa) {
  switch (usable_isa(isa)) {
#if defined(Q3VL_X86_KERNELS)
    case Int4Isa::Avx512Vnni: return attend_group_avx512;
    case Int4Isa::AvxVnni:  // VNNI adds nothing here
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
