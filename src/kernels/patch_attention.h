#pragma once
// The vision encoder's attention in one pass over the q, k and v projections' outputs: each head's query
// and key rotated (2-D rotary, rotate-half) as they are read, softmax(scale * q k^T) v computed
// block by block with a running maximum and sum (flash attention), within attention segments only
// (an image, or a video's frame pair, attends to itself). What ONNX Runtime's graph computed with
// a Split, the rotations' Mul, Neg, Concat and Add, and MultiHeadAttention, which first copies q,
// k and v into its own head-major layout: here nothing the size of the patches is allocated
// besides the output, only one head's keys and values of one segment per task.
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/int4_matrices.h"
#include "kernels/workspace_pool.h"

namespace q3vl::kernels {

// Rows [first, end) of the call: they attend only to each other.
struct AttentionSegment {
  std::int64_t first = 0, end = 0;
};

struct PatchAttention {
  std::int64_t rows = 0, num_heads = 0, head_dim = 0;
  float scale = 0.0f;
  // Each row's query, key and value (the projections' outputs, biases included), [num_heads,
  // head_dim] each: row r's query at query + r * stride, its key and value likewise.
  const float* query = nullptr;
  const float* key = nullptr;
  const float* value = nullptr;
  std::int64_t stride = 0;
  // [rows, head_dim]: the rotary tables; a query or key x becomes x * cos + rotate_half(x) * sin,
  // rotate_half(x) = [-x2, x1] (x's second half negated, then its first).
  const float* cos = nullptr;
  const float* sin = nullptr;
  std::span<const AttentionSegment> segments;  // in order, covering [0, rows) exactly
  float* out = nullptr;                        // [rows, num_heads * head_dim]
};

// One task's scratch (the kernel's loops fill it): one head of one segment, its keys rotated and
// transposed in tiles of a score tile's keys ([tiles][head_dim][keys of a tile]) and its values [keys padded][head_dim padded to a
// vector], zeros past the segment's keys; a block of rotated, scaled queries, their scores, running
// maxima and sums, and weighted values.
struct PatchAttentionWorkspace {
  std::int64_t keys = 0, padded_keys = 0, head_dim = 0, padded_dim = 0;
  std::vector<float> keys_t, values, queries, scores, top, total, acc;
};

// The op's workspaces (kernels/workspace_pool.h): any size within a call (its tasks reuse them),
// up to 4 MB each between calls (segments up to ~8,000 patches at the 2B's head size).
struct PatchAttentionScratch : WorkspacePool<PatchAttentionWorkspace> {
  PatchAttentionScratch() : WorkspacePool(std::size_t{4} << 20) {}
};

// Throws InvalidInput naming what disagrees: sizes, an odd head size, segments that leave rows out
// or overlap, missing pointers.
void check_patch_attention(const PatchAttention& call);
// One task per segment, head and up to 1,024 of its queries, in the registers of `isa` (Best: the widest this CPU has;
// AVX-512 VNNI stands for AVX-512, AVX-VNNI for AVX2); throws Unsupported if the CPU lacks it.
void run_patch_attention(const PatchAttention& call, const ParallelFor& parallel, PatchAttentionScratch& scratch, Int4Isa isa = Int4Isa::Best);

// The segments of a call of `items` (images or videos) from their first rows, one past their last
// rows and temporal slices (grid t): each item's rows split into that many equal slices. Throws
// InvalidInput where the items do not tile [0, rows) in order or a slice count does not divide its
// item's rows.
std::vector<AttentionSegment> item_segments(std::span<const std::int64_t> starts, std::span<const std::int64_t> ends,
                                            std::span<const std::int64_t> slices, std::int64_t rows);

}  // namespace q3vl::kernels
