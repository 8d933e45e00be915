#include "math/mrope.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace q3vl::mrope {
namespace {

// Python's slice stop for `3 * section` over a sequence of n: negative counts from the end, then
// clamped to [0, n]. Written without forming 3 * section, which could overflow.
std::int64_t slice_stop(std::int64_t section, std::int64_t n) {
  if (section >= n) return n;
  if (section <= -n) return 0;
  const std::int64_t stop = 3 * section;
  return std::clamp(stop < 0 ? stop + n : stop, std::int64_t{0}, n);
}

}  // namespace

std::vector<std::int64_t> slot_axes(const std::vector<std::int64_t>& section, std::int64_t head_dim) {
  const std::int64_t n = head_dim / 2;
  std::vector<std::int64_t> axes(static_cast<std::size_t>(n), 0);
  for (const std::int64_t axis : {1, 2}) {
    const std::int64_t stop = slice_stop(section.at(static_cast<std::size_t>(axis)), n);
    for (std::int64_t j = axis; j < stop; j += 3) axes[static_cast<std::size_t>(j)] = axis;
  }
  return axes;
}

std::vector<std::string> layout_notes(const std::vector<std::int64_t>& section, std::int64_t head_dim) {
  std::vector<std::string> notes;
  const std::int64_t n = head_dim / 2;
  const char* axis_names[] = {"T", "H", "W"};
  for (std::size_t axis = 1; axis < 3 && axis < section.size(); ++axis) {
    if (section[axis] < 0) {
      notes.push_back(std::string(axis_names[axis]) + " section " + std::to_string(section[axis]) +
                      " is negative: as in HF it is a Python slice stop counted from the end");
    } else if (section[axis] > 0 && 3 * std::min(section[axis], n) - 3 + static_cast<std::int64_t>(axis) >= n) {
      // The slice's last wanted slot, 3 * section - 3 + axis, lies past the last rotary slot.
      const std::vector<std::int64_t> axes = slot_axes(section, head_dim);
      const auto used = std::count(axes.begin(), axes.end(), static_cast<std::int64_t>(axis));
      notes.push_back(std::string(axis_names[axis]) + " section " + std::to_string(section[axis]) + " needs " +
                      std::to_string(3 * std::min(section[axis], n)) + " interleaved slots but head_dim / 2 is " +
                      std::to_string(n) + ": clipped to " + std::to_string(used) + " slots, as HF does");
    }
  }
  if (section.size() > 3) notes.push_back("entries after the third are ignored, as in HF");
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < std::min<std::size_t>(section.size(), 3); ++i) {
    sum = std::clamp<std::int64_t>(sum + std::clamp<std::int64_t>(section[i], -n, n), -4 * n, 4 * n);
  }
  if (section.size() >= 3 && sum != n) {
    notes.push_back("sections sum to " + std::to_string(sum) + ", not head_dim / 2 = " + std::to_string(n) +
                    "; the interleaved layout ignores the T section (HF: T takes every slot H and W do not)");
  }
  return notes;
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
