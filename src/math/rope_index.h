#pragma once
// 3-D position ids and rope_deltas for a token sequence with images (HF get_rope_index, docs/model-math.md §6):
// text advances all three axes together; a vision block of (h/2) x (w/2) merged tokens sits at
// T = s, H = s + row, W = s + col, and the text after it resumes at max + 1.
#include <cstdint>
#include <span>
#include <vector>

#include "math/grid.h"

namespace q3vl {

struct RopePositions {
  std::vector<std::int64_t> t, h, w;  // one entry per token
  std::int64_t next_position = 0;     // where the next token goes (max of all positions + 1)
  // next_position - (number of tokens) for a prompt starting at position 0: the decode position
  // of cache index p is p + rope_delta, on all three axes (HF rope_deltas).
  std::int64_t rope_delta = 0;
};

// The token ids that stand for one merged visual token (the config's image and video pads).
struct VisualPadTokens {
  std::int64_t image = -1;
  std::int64_t video = -1;
  bool contains(std::int64_t id) const { return id == image || id == video; }
};

// `grids` lists the images (or videos, t > 1: one block per frame pair) in order of appearance;
// each block is (h/2)*(w/2) consecutive pad tokens. `start` is the first position (non-zero when
// a turn is appended to an existing cache). Throws InvalidInput if pads and grids disagree.
RopePositions rope_positions(std::span<const std::int64_t> ids, std::span<const GridThw> grids,
                             VisualPadTokens pads, std::int64_t start = 0);

// Position ids of text tokens begin..end-1 as the decoder takes them, axis-major [3, n]: text
// advances all three axes together.
std::vector<std::int64_t> text_position_ids(std::int64_t begin, std::int64_t end);

}  // namespace q3vl
