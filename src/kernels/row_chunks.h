#pragma once
// How a decode step's weight rows are shared among the threads: in long contiguous chunks, claimed
// by whichever thread is free, the largest first.
//
// Why: a step with a few tokens is bound by reading the weights, and memory delivers its rate only
// to long sequential streams. On a Zen 4 VM a plain two-thread read loop taking pieces in turn read
// 29-32 GB/s in 64 KB pieces and 43-45 GB/s in 1 MB pieces; the fixed 64-row tasks (24-128 KB) this
// replaces read a MoE layer's experts in 0.84-0.89 ms, these chunks in 0.68-0.76 ms
// (int4_experts_bench). Chunks shrink towards the end (an eighth of what is left, never under
// kMinChunkBytes) so that the threads finish together.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "kernels/int4_matrices.h"

namespace q3vl::kernels {

// Whether jobs of `tokens` activation rows are bound by memory and go in chunks (the rest, bound by
// compute, keep tasks of fixed size, which the panels need).
constexpr std::int64_t kStreamingTokens = 4;
constexpr std::size_t kMinChunkBytes = std::size_t{256} << 10;

// Runs work(segment, first, count) over rows [first, first + count) of each segment (segment s has
// segment_rows[s] rows, each `row_bytes` long in memory, scales included), every row exactly once,
// on the threads of `parallel`. A chunk that runs from one segment into the next is two calls.
void for_each_row_chunk(std::span<const std::int64_t> segment_rows, std::size_t row_bytes, const ParallelFor& parallel,
                        const std::function<void(std::size_t segment, std::int64_t first, std::int64_t count)>& work);

}  // namespace q3vl::kernels
