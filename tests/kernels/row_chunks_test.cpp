// The chunking of a decode step's weight rows (kernels/row_chunks.h): every row of every segment
// exactly once, no piece crossing a segment's end, chunks no smaller than the minimum but at the
// end, on a pool of real threads as on one.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels/row_chunks.h"

namespace q3vl::kernels {
namespace {

// `threads` threads taking tasks from a shared counter, started per call.
ParallelFor threads_for(int threads) {
  return [threads](std::size_t count, const std::function<void(std::size_t)>& task) {
    std::atomic<std::size_t> next{0};
    const auto work = [&] {
      for (std::size_t i; (i = next++) < count;) task(i);
    };
    std::vector<std::thread> helpers;
    for (int t = 1; t < threads; ++t) helpers.emplace_back(work);
    work();
    for (std::thread& h : helpers) h.join();
  };
}

TEST(RowChunks, VisitEveryRowOnceWithinItsSegment) {
  const std::vector<std::int64_t> segments = {0, 5, 1000, 37, 4000, 0, 1, 2500};
  const std::size_t row_bytes = 1024;  // the minimum chunk is 256 rows
  const std::int64_t min_rows = static_cast<std::int64_t>(kMinChunkBytes / row_bytes);
  std::size_t cases = 0;
  for (const int threads : {1, 2, 5}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    std::vector<std::vector<std::atomic<int>>> visits;
    for (const std::int64_t rows : segments) visits.emplace_back(static_cast<std::size_t>(rows));
    std::mutex mutex;
    std::vector<std::int64_t> pieces;
    for_each_row_chunk(segments, row_bytes, threads_for(threads), [&](std::size_t s, std::int64_t first, std::int64_t count) {
      ASSERT_LT(s, segments.size());
      ASSERT_GE(first, 0);
      ASSERT_GT(count, 0);
      ASSERT_LE(first + count, segments[s]);
      for (std::int64_t r = first; r < first + count; ++r) ++visits[s][static_cast<std::size_t>(r)];
      const std::lock_guard lock(mutex);
      pieces.push_back(count);
    });
    for (std::size_t s = 0; s < segments.size(); ++s) {
      for (std::size_t r = 0; r < visits[s].size(); ++r) ASSERT_EQ(visits[s][r].load(), 1) << "segment " << s << " row " << r;
    }
    // 7543 rows: several chunks, most of them no shorter than the minimum (pieces cut at a
    // segment's end may be, as the last chunk).
    EXPECT_GT(pieces.size(), 4u);
    std::int64_t long_pieces = 0;
    for (const std::int64_t count : pieces) long_pieces += count >= min_rows ? 1 : 0;
    EXPECT_GE(long_pieces, 4);
    ++cases;
  }
  EXPECT_EQ(cases, 3u);
}

TEST(RowChunks, NothingToDoCallsNothing) {
  int calls = 0;
  for_each_row_chunk(std::vector<std::int64_t>{0, 0}, 64, serial_for(), [&](std::size_t, std::int64_t, std::int64_t) { ++calls; });
  for_each_row_chunk(std::vector<std::int64_t>{}, 64, serial_for(), [&](std::size_t, std::int64_t, std::int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace q3vl::kernels
