#pragma once
// Block-wise round-to-nearest weight quantization in the layout of ONNX Runtime's MatMulNBits
// (spec onnxruntime.md §3.1): weight [N, K] (Linear layout) -> packed B [N, k_blocks, blob],
// scales [N, k_blocks], optional packed zero points. Same math as ORT's RTN quantizer (MLAS).
#include <cstdint>
#include <span>
#include <vector>

namespace q3vl {

struct BlockQuantOptions {
  int bits = 4;              // 4 or 8
  std::int64_t block_size = 32;  // power of two, >= 16
  bool symmetric = true;     // symmetric: no zero points stored (ORT default 2^(bits-1))
};

struct QuantizedMatrix {
  std::int64_t rows = 0;     // N (output features)
  std::int64_t cols = 0;     // K (input features)
  std::int64_t blocks_per_row = 0;
  std::vector<std::uint8_t> packed;       // [N, k_blocks, block_size * bits / 8]
  std::vector<float> scales;              // [N, k_blocks]
  std::vector<std::uint8_t> zero_points;  // asymmetric only: [N, ceil(k_blocks * bits / 8)]
};

void validate(const BlockQuantOptions& options);

// Quantizes `rows` rows of `cols` values (row-major).
QuantizedMatrix quantize_blocks(std::span<const float> weight, std::int64_t rows, std::int64_t cols,
                                const BlockQuantOptions& options);

// The float weight the quantized matrix stands for (for error reports and tests).
std::vector<float> dequantize_blocks(const QuantizedMatrix& q, const BlockQuantOptions& options);

}  // namespace q3vl
