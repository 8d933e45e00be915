#include "kernels/row_chunks.h"

#include <algorithm>
#include <atomic>
#include <vector>

namespace q3vl::kernels {

namespace {

// Claimers handed to the thread pool: each claims chunks until none is left, so any pool of up to
// this many threads keeps all of them busy; the spare ones return at once.
constexpr std::size_t kClaimers = 64;
constexpr std::int64_t kRowMultiple = 16;

}  // namespace

void for_each_row_chunk(std::span<const std::int64_t> segment_rows, std::size_t row_bytes, const ParallelFor& parallel,
                        const std::function<void(std::size_t segment, std::int64_t first, std::int64_t count)>& work) {
  std::vector<std::int64_t> starts(segment_rows.size() + 1, 0);  // the segments' rows, one after another
  for (std::size_t s = 0; s < segment_rows.size(); ++s) starts[s + 1] = starts[s] + segment_rows[s];
  const std::int64_t total = starts.back();
  if (total == 0) return;
  const std::int64_t min_rows = std::max<std::int64_t>(
      kRowMultiple, (static_cast<std::int64_t>(kMinChunkBytes / std::max<std::size_t>(row_bytes, 1)) + kRowMultiple - 1) / kRowMultiple * kRowMultiple);
  std::atomic<std::int64_t> next{0};
  parallel(std::min<std::size_t>(kClaimers, static_cast<std::size_t>((total + min_rows - 1) / min_rows)), [&](std::size_t) {
    for (;;) {
      std::int64_t first = next.load(std::memory_order_relaxed), count = 0;
      do {
        const std::int64_t left = total - first;
        if (left <= 0) return;
        count = std::max(min_rows, left / 8 / kRowMultiple * kRowMultiple);
        if (left - count < min_rows / 2) count = left;  // no sliver left for a last chunk
        count = std::min(count, left);
      } while (!next.compare_exchange_weak(first, first + count, std::memory_order_relaxed));
      // The chunk, split where it crosses from one segment into the next.
      std::size_t s = static_cast<std::size_t>(std::upper_bound(starts.begin(), starts.end(), first) - starts.begin()) - 1;
      for (std::int64_t row = first, end = first + count; row < end; ++s) {
        const std::int64_t piece_end = std::min(end, starts[s + 1]);
        if (piece_end > row) work(s, row - starts[s], piece_end - row);
        row = std::max(row, piece_end);
      }
    }
  });
}

}  // namespace q3vl::kernels
