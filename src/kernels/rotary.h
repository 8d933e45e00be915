#pragma once
// HF's rotate_half rotary embedding, x * cos + rotate_half(x) * sin with rotate_half(x) = [-x2, x1],
// on one pair of a head: values i and i + D/2. The decoder's q/k preamble (kernels/qk_norm_rotary)
// and the vision attention (kernels/patch_attention) both rotate through this one definition; the
// exporter's graphs write the same formula as ONNX nodes.

namespace q3vl::kernels {

struct RotatedPair {
  float first, second;
};

// `first` = x[i], `second` = x[i + D/2]; the tables' values at i and at i + D/2 (the decoder's
// half-size tables pass the same value twice).
inline RotatedPair rotate_half_pair(float first, float second, float cos_first, float sin_first, float cos_second, float sin_second) {
  return {first * cos_first - second * sin_first, second * cos_second + first * sin_second};
}

}  // namespace q3vl::kernels
