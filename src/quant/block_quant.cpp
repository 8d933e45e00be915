#include "quant/block_quant.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "q3vl/error.h"

namespace q3vl {
namespace {

int clamp_level(float v, int max_level) {
  return std::clamp(static_cast<int>(std::nearbyint(v)), 0, max_level);
}

void put(std::vector<std::uint8_t>& bytes, std::size_t base, std::int64_t index, int bits, int value) {
  if (bits == 8) {
    bytes[base + static_cast<std::size_t>(index)] = static_cast<std::uint8_t>(value);
  } else {  // element 2j in the low nibble of byte j, 2j+1 in the high nibble
    std::uint8_t& byte = bytes[base + static_cast<std::size_t>(index / 2)];
    byte = (index % 2 == 0) ? static_cast<std::uint8_t>((byte & 0xf0) | value)
                            : static_cast<std::uint8_t>((byte & 0x0f) | (value << 4));
  }
}

int get(const std::vector<std::uint8_t>& bytes, std::size_t base, std::int64_t index, int bits) {
  if (bits == 8) return bytes[base + static_cast<std::size_t>(index)];
  const std::uint8_t byte = bytes[base + static_cast<std::size_t>(index / 2)];
  return index % 2 == 0 ? (byte & 0x0f) : (byte >> 4);
}

}  // namespace

void validate(const BlockQuantOptions& o) {
  if (o.bits != 4 && o.bits != 8) throw InvalidInput("quantization bits must be 4 or 8, got " + std::to_string(o.bits));
  if (o.block_size < 16 || o.block_size > 256 || (o.block_size & (o.block_size - 1)) != 0) {
    throw InvalidInput("quantization block size must be a power of two in [16, 256], got " +
                       std::to_string(o.block_size));
  }
}

QuantizedMatrix quantize_blocks(std::span<const float> weight, std::int64_t rows, std::int64_t cols,
                                const BlockQuantOptions& o) {
  validate(o);
  QuantizedMatrix q;
  q.rows = rows;
  q.cols = cols;
  q.blocks_per_row = (cols + o.block_size - 1) / o.block_size;
  const std::int64_t blob = o.block_size * o.bits / 8;
  const int max_level = (1 << o.bits) - 1;
  const int mid = 1 << (o.bits - 1);
  q.packed.assign(static_cast<std::size_t>(rows * q.blocks_per_row * blob), 0);
  q.scales.assign(static_cast<std::size_t>(rows * q.blocks_per_row), 0.0f);
  const std::int64_t zp_bytes_per_row = (q.blocks_per_row * o.bits + 7) / 8;
  if (!o.symmetric) q.zero_points.assign(static_cast<std::size_t>(rows * zp_bytes_per_row), 0);

  for (std::int64_t n = 0; n < rows; ++n) {
    const float* row = weight.data() + n * cols;
    for (std::int64_t b = 0; b < q.blocks_per_row; ++b) {
      const std::int64_t begin = b * o.block_size;
      const std::int64_t end = std::min(cols, begin + o.block_size);
      float scale = 0.0f;
      int zero_point = mid;
      if (o.symmetric) {
        // The value of largest magnitude maps exactly to level 0 (-mid): scale = -extreme / mid.
        float extreme = 0.0f;
        for (std::int64_t k = begin; k < end; ++k) {
          if (std::fabs(row[k]) > std::fabs(extreme)) extreme = row[k];
        }
        scale = -extreme / static_cast<float>(mid);
      } else {
        float lo = 0.0f;
        float hi = 0.0f;
        for (std::int64_t k = begin; k < end; ++k) {
          lo = std::min(lo, row[k]);
          hi = std::max(hi, row[k]);
        }
        scale = (hi - lo) / static_cast<float>(max_level);
        zero_point = scale != 0.0f ? clamp_level(-lo / scale, max_level) : mid;
      }
      const float inverse = scale != 0.0f ? 1.0f / scale : 0.0f;
      const std::size_t base = static_cast<std::size_t>((n * q.blocks_per_row + b) * blob);
      for (std::int64_t k = begin; k < end; ++k) {
        put(q.packed, base, k - begin, o.bits, clamp_level(row[k] * inverse + static_cast<float>(zero_point), max_level));
      }
      // Padding past K dequantizes to 0: store the zero point there.
      for (std::int64_t k = end; k < begin + o.block_size; ++k) put(q.packed, base, k - begin, o.bits, zero_point);
      q.scales[static_cast<std::size_t>(n * q.blocks_per_row + b)] = scale;
      if (!o.symmetric) put(q.zero_points, static_cast<std::size_t>(n * zp_bytes_per_row), b, o.bits, zero_point);
    }
  }
  return q;
}

std::vector<float> dequantize_blocks(const QuantizedMatrix& q, const BlockQuantOptions& o) {
  const std::int64_t blob = o.block_size * o.bits / 8;
  const std::int64_t zp_bytes_per_row = (q.blocks_per_row * o.bits + 7) / 8;
  std::vector<float> out(static_cast<std::size_t>(q.rows * q.cols));
  for (std::int64_t n = 0; n < q.rows; ++n) {
    for (std::int64_t k = 0; k < q.cols; ++k) {
      const std::int64_t b = k / o.block_size;
      const int level = get(q.packed, static_cast<std::size_t>((n * q.blocks_per_row + b) * blob), k % o.block_size, o.bits);
      const int zero_point =
          o.symmetric ? (1 << (o.bits - 1)) : get(q.zero_points, static_cast<std::size_t>(n * zp_bytes_per_row), b, o.bits);
      out[static_cast<std::size_t>(n * q.cols + k)] =
          static_cast<float>(level - zero_point) * q.scales[static_cast<std::size_t>(n * q.blocks_per_row + b)];
    }
  }
  return out;
}

}  // namespace q3vl
