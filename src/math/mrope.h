#pragma once
// Interleaved multimodal RoPE (spec §11.2): which position axis (0 = T, 1 = H, 2 = W) drives each
// of the head_dim / 2 rotary slots, and the inverse frequencies. The exporter bakes these into
// text.onnx; tests and the runtime use the same functions.
#include <cstdint>
#include <vector>

namespace q3vl::mrope {

// Slot j uses H when j % 3 == 1 and j < 3 * section[1], W when j % 3 == 2 and j < 3 * section[2],
// T otherwise (for [24, 20, 20]: 24 T slots including 60..63).
std::vector<std::int64_t> slot_axes(const std::vector<std::int64_t>& mrope_section, std::int64_t head_dim);

// inv[j] = 1 / theta^(2j / head_dim), j < head_dim / 2, rounded to float32.
std::vector<float> inverse_frequencies(double theta, std::int64_t head_dim);

}  // namespace q3vl::mrope
