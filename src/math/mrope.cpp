#include "math/mrope.h"

#include <cmath>

namespace q3vl::mrope {

std::vector<std::int64_t> slot_axes(const std::vector<std::int64_t>& section, std::int64_t head_dim) {
  std::vector<std::int64_t> axes(static_cast<std::size_t>(head_dim / 2), 0);
  for (std::int64_t j = 0; j < head_dim / 2; ++j) {
    if (j % 3 == 1 && j < 3 * section.at(1)) axes[static_cast<std::size_t>(j)] = 1;
    if (j % 3 == 2 && j < 3 * section.at(2)) axes[static_cast<std::size_t>(j)] = 2;
  }
  return axes;
}

std::vector<float> inverse_frequencies(double theta, std::int64_t head_dim) {
  std::vector<float> inv(static_cast<std::size_t>(head_dim / 2));
  for (std::int64_t j = 0; j < head_dim / 2; ++j) {
    // torch: theta ** (arange(0, d, 2, float) / d) in float32, then 1 / that.
    const float exponent = static_cast<float>(2 * j) / static_cast<float>(head_dim);
    inv[static_cast<std::size_t>(j)] = 1.0f / static_cast<float>(std::pow(theta, static_cast<double>(exponent)));
  }
  return inv;
}

}  // namespace q3vl::mrope
