#include "math/rope_index.h"

#include <algorithm>
#include <string>

#include "q3vl/error.h"

namespace q3vl {

RopePositions rope_positions(std::span<const std::int64_t> ids, std::span<const GridThw> grids,
                             VisualPadTokens pads, std::int64_t start) {
  // A video of t frame pairs is t blocks of one frame pair each (HF splits its grid row the same way).
  std::vector<GridThw> blocks;
  for (const GridThw& g : grids) {
    for (std::int64_t f = 0; f < g.t; ++f) blocks.push_back({1, g.h, g.w});
  }
  auto is_pad = [pads](std::int64_t id) { return pads.contains(id); };
  RopePositions out;
  const std::size_t n = ids.size();
  out.t.resize(n);
  out.h.resize(n);
  out.w.resize(n);
  std::int64_t next = start;
  std::size_t block = 0;
  for (std::size_t i = 0; i < n;) {
    if (!is_pad(ids[i])) {
      out.t[i] = out.h[i] = out.w[i] = next++;
      ++i;
      continue;
    }
    if (block >= blocks.size()) {
      throw InvalidInput("the prompt has more image pad tokens than the " + std::to_string(grids.size()) +
                         " images given account for");
    }
    const std::int64_t rows = blocks[block].h / 2;
    const std::int64_t cols = blocks[block].w / 2;
    const std::size_t tokens = static_cast<std::size_t>(rows * cols);
    if (i + tokens > n || !std::all_of(ids.begin() + static_cast<std::ptrdiff_t>(i),
                                       ids.begin() + static_cast<std::ptrdiff_t>(i + tokens), is_pad)) {
      throw InvalidInput("image block " + std::to_string(block) + " needs " + std::to_string(tokens) +
                         " consecutive pad tokens at position " + std::to_string(i));
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < cols; ++c, ++i) {
        out.t[i] = next;
        out.h[i] = next + r;
        out.w[i] = next + c;
      }
    }
    next += std::max(rows, cols);  // the block's largest position is next + max(rows, cols) - 1
    ++block;
  }
  if (block != blocks.size()) {
    throw InvalidInput("the prompt has pad tokens for " + std::to_string(block) + " image blocks but " +
                       std::to_string(blocks.size()) + " were given");
  }
  out.next_position = next;
  out.rope_delta = next - static_cast<std::int64_t>(n) - start;
  return out;
}

std::vector<std::int64_t> text_position_ids(std::int64_t begin, std::int64_t end) {
  std::vector<std::int64_t> ids;
  ids.reserve(static_cast<std::size_t>(3 * std::max<std::int64_t>(end - begin, 0)));
  for (int axis = 0; axis < 3; ++axis) {
    for (std::int64_t i = begin; i < end; ++i) ids.push_back(i);
  }
  return ids;
}

}  // namespace q3vl
