#pragma once
// How a decode step's weight rows are shared among the threads: in long contiguous chunks, claimed
// by whichever thread is free, the largest first.
//
// Why: a step with a few tokens is bound by reading the weights, and memory delivers its rate only
// to long sequential streams. Fixed 64-row tasks (24-128 KB) taken in turn by two threads read at
// ~70% of it on a Zen 4 VM; chunks of 1 MB at ~100% (a plain read loop behaves alike: 64 KB pieces
// 29-32 GB/s, 1 MB pieces 43-45 GB/s). Chunks shrink towards the end (an eighth of what is left,
// never under kMinChunkBytes) so that the threads finish together.
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
