#pragma once
// Interleaved multimodal RoPE (docs/model-math.md §7.2, §7.3): which position axis (0 = T, 1 = H, 2 = W) drives each
// of the head_dim / 2 rotary slots, and the inverse frequencies. The one definition of the layout:
// the exporter bakes it into text.onnx, tests and the runtime use the same functions.
#include <cstdint>
#include <string>
#include <vector>

namespace q3vl::mrope {

// Exactly HF's apply_interleaved_mrope: slot j uses H when j is in Python's
// range(n)[1 : 3 * section[1] : 3], W when in range(n)[2 : 3 * section[2] : 3], T otherwise
// (n = head_dim / 2; for [24, 20, 20], n = 64: 24 T slots including 60..63). Python slice
// semantics included: a stop past n clips, a negative stop counts from the end. section[0] is
// never read. `section` needs at least 3 entries.
std::vector<std::int64_t> slot_axes(const std::vector<std::int64_t>& mrope_section, std::int64_t head_dim);

// Notes on a section that HF accepts but that is not the usual layout (H or W slices clipped,
// sections not summing to head_dim / 2, negative entries, extra entries); empty for [24, 20, 20].
std::vector<std::string> layout_notes(const std::vector<std::int64_t>& mrope_section, std::int64_t head_dim);

// inv[j] = 1 / theta^(2j / head_dim), j < head_dim / 2, rounded to float32.
std::vector<float> inverse_frequencies(double theta, std::int64_t head_dim);

}  // namespace q3vl::mrope
