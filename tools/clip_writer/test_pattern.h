#pragma once
// The synthetic picture frame `index` of a test clip shows, shared by make_test_clip (which
// encodes it) and the tests (which compare decoded frames against it): smooth gradients, which
// lossy codecs keep within a few levels, and a saturated square that moves with the index, so
// every frame differs from its neighbours and a frame out of order shows.
#include <cstdint>

#include "q3vl/image.h"

namespace q3vl::clip {

RgbImage test_pattern(std::int64_t width, std::int64_t height, std::int64_t index);

}  // namespace q3vl::clip
