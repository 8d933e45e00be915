#pragma once
// Attention for a decode step: one new token per sequence against its KV cache, with grouped
// query heads, computing what ONNX Runtime's GroupQueryAttention computes for a step of one token
// (softmax(scale * q k^T) v over the cached positions and the new one), appending the new key and
// value to the cache. ONNX Runtime's CPU kernel runs two general matrix products per query head for
// this (each copying the head's keys into a packed buffer first); here each key and value row is
// read straight from the cache, once per query head, from the cache's own layout.
#include <cstdint>
#include <span>

#include "kernels/int4_matrices.h"

namespace q3vl::kernels {

// The cache's element type: float32, or IEEE half floats (q3vl's kernel graphs: half the bytes a
// decode step reads from the cache, and half the memory). The new key and value are rounded to
// nearest-even when appended; everything else computes in float32.
enum class CacheType { Float32, Float16 };

struct DecodeAttention {
  std::int64_t batch = 0, num_heads = 0, kv_heads = 0, head_dim = 0;
  float scale = 0.0f;
  const float* query = nullptr;  // [batch, num_heads * head_dim]: this step's
  const float* key = nullptr;    // [batch, kv_heads * head_dim]
  const float* value = nullptr;
  CacheType cache = CacheType::Float32;  // what the four cache pointers below hold
  // The cache before this step, [batch, kv_heads, past_capacity, head_dim]; may be the present
  // buffers themselves (appending in place).
  const void* past_key = nullptr;
  const void* past_value = nullptr;
  std::int64_t past_capacity = 0;
  void* present_key = nullptr;  // [batch, kv_heads, capacity, head_dim]
  void* present_value = nullptr;
  std::int64_t capacity = 0;
  // Per sequence, the positions already cached: the new token goes to that position and attends
  // to it and every one before.
  std::span<const std::int64_t> cached;
  float* out = nullptr;  // [batch, num_heads * head_dim]
};

// Throws InvalidInput naming what disagrees: heads that do not group, a cached length outside
// [0, capacity) or beyond the past buffer, missing pointers.
void check_decode_attention(const DecodeAttention& step);
// Runs in the registers of `isa` (Best: the widest this CPU has; AVX-512 VNNI stands for AVX-512,
// AVX2 for AVX2 with FMA); throws Unsupported if the CPU lacks it.
void run_decode_attention(const DecodeAttention& step, const ParallelFor& parallel, Int4Isa isa = Int4Isa::Best);

}  // namespace q3vl::kernels
