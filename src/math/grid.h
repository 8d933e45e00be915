#pragma once
// One visual item's patch grid, as image_grid_thw holds it: t frame pairs (1 for an image) of
// h x w patches. Shared by preprocessing, the vision encoder and the 3-D position ids.
#include <cstdint>

namespace q3vl {

struct GridThw {
  std::int64_t t = 1;
  std::int64_t h = 0;  // in patches, before 2x2 merging
  std::int64_t w = 0;
  std::int64_t patches() const { return t * h * w; }
  std::int64_t tokens() const { return patches() / 4; }  // one per 2x2 block
  bool operator==(const GridThw&) const = default;
};

}  // namespace q3vl
