#include "kernels/patch_attention.h"

#include <algorithm>
#include <string>
#include <vector>

#include "q3vl/error.h"

namespace q3vl::kernels {

// The per-instruction-set builds of the loops (patch_attention_simd.inc).
void attend_segment_head_portable(const PatchAttention& a, const AttentionSegment& segment, std::int64_t head, std::int64_t query_first,
                                std::int64_t query_end, PatchAttentionWorkspace& w);
void attend_segment_head_avx2(const PatchAttention& a, const AttentionSegment& segment, std::int64_t head, std::int64_t query_first,
                                std::int64_t query_end, PatchAttentionWorkspace& w);
void attend_segment_head_avx512(const PatchAttention& a, const AttentionSegment& segment, std::int64_t head, std::int64_t query_first,
                                std::int64_t query_end, PatchAttentionWorkspace& w);

namespace {

using SegmentHeadKernel = void (*)(const PatchAttention&, const AttentionSegment&, std::int64_t, std::int64_t, std::int64_t, PatchAttentionWorkspace&);

// Queries of one segment a task takes at most: tasks enough for many cores on a large image, while
// each task's copy of its head's keys and values (one pass over them) stays a small share of its
// work (about a thousandth of the products).
constexpr std::int64_t kQueriesPerTask = 1024;

struct Task {
  std::size_t segment;
  std::int64_t head, query_first, query_end;
};

SegmentHeadKernel segment_head_kernel(Int4Isa isa) {
  switch (usable_isa(isa)) {
#if defined(Q3VL_X86_KERNELS)
    case Int4Isa::Avx512Vnni: return attend_segment_head_avx512;
    case Int4Isa::AvxVnni:  // VNNI adds nothing to float loops
    case Int4Isa::Avx2: return attend_segment_head_avx2;
#endif
    default: return attend_segment_head_portable;
  }
}

}  // namespace

void check_patch_attention(const PatchAttention& a) {
  const auto fail = [](const std::string& what) { throw InvalidInput("patch attention: " + what); };
  if (a.rows < 0 || a.num_heads <= 0 || a.head_dim <= 0 || a.head_dim % 2 != 0) {
    fail(std::to_string(a.rows) + " rows, " + std::to_string(a.num_heads) + " heads of " + std::to_string(a.head_dim) +
         " (the rotation needs an even head size)");
  }
  if (a.rows > 0 && (a.query == nullptr || a.key == nullptr || a.value == nullptr || a.cos == nullptr || a.sin == nullptr || a.out == nullptr)) {
    fail("a tensor is missing");
  }
  if (a.stride < a.num_heads * a.head_dim) fail("rows " + std::to_string(a.stride) + " floats apart hold less than a row");
  std::int64_t next = 0;
  for (const AttentionSegment& s : a.segments) {
    if (s.first != next || s.end <= s.first) {
      fail("segment [" + std::to_string(s.first) + ", " + std::to_string(s.end) + ") does not follow row " + std::to_string(next));
    }
    next = s.end;
  }
  if (next != a.rows) fail("the segments cover " + std::to_string(next) + " of " + std::to_string(a.rows) + " rows");
}

namespace {

std::size_t bytes_held(const PatchAttentionWorkspace& w) {
  std::size_t floats = 0;
  for (const std::vector<float>* v : {&w.keys_t, &w.values, &w.queries, &w.scores, &w.top, &w.total, &w.acc}) floats += v->capacity();
  return floats * sizeof(float);
}

}  // namespace

void run_patch_attention(const PatchAttention& a, const ParallelFor& parallel, PatchAttentionScratch& scratch, Int4Isa isa) {
  check_patch_attention(a);
  const SegmentHeadKernel kernel = segment_head_kernel(isa);
  std::vector<Task> tasks;
  for (std::size_t s = 0; s < a.segments.size(); ++s) {
    const std::int64_t rows = a.segments[s].end - a.segments[s].first;
    for (std::int64_t h = 0; h < a.num_heads; ++h) {
      for (std::int64_t q = 0; q < rows; q += kQueriesPerTask) tasks.push_back({s, h, q, std::min(rows, q + kQueriesPerTask)});
    }
  }
  parallel(tasks.size(), [&](std::size_t index) {
    const Task& t = tasks[index];
    std::unique_ptr<PatchAttentionWorkspace> workspace = scratch.take();
    kernel(a, a.segments[t.segment], t.head, t.query_first, t.query_end, *workspace);  // an exception drops the workspace
    const std::size_t bytes = bytes_held(*workspace);
    scratch.give_back(std::move(workspace), bytes);
  });
  scratch.trim();
}

std::vector<AttentionSegment> item_segments(std::span<const std::int64_t> starts, std::span<const std::int64_t> ends,
                                            std::span<const std::int64_t> slices, std::int64_t rows) {
  if (starts.size() != ends.size() || starts.size() != slices.size()) {
    throw InvalidInput("patch attention: " + std::to_string(starts.size()) + " item starts, " + std::to_string(ends.size()) + " ends and " +
                       std::to_string(slices.size()) + " slice counts");
  }
  std::vector<AttentionSegment> segments;
  std::int64_t next = 0;
  for (std::size_t i = 0; i < starts.size(); ++i) {
    const std::int64_t first = starts[i], end = ends[i], count = slices[i];
    if (first != next || end <= first || end > rows || count <= 0 || (end - first) % count != 0) {
      throw InvalidInput("patch attention: item " + std::to_string(i) + " has rows [" + std::to_string(first) + ", " + std::to_string(end) +
                         ") in " + std::to_string(count) + " slices, after row " + std::to_string(next) + " of " + std::to_string(rows));
    }
    const std::int64_t length = (end - first) / count;
    for (std::int64_t s = 0; s < count; ++s) segments.push_back({first + s * length, first + (s + 1) * length});
    next = end;
  }
  if (next != rows) throw InvalidInput("patch attention: the items cover " + std::to_string(next) + " of " + std::to_string(rows) + " rows");
  return segments;
}

}  // namespace q3vl::kernels
