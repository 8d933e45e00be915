#include "kernels/int8_matmul.h"

#include <string>

#include "kernels/int4_matmul.h"
#include "kernels/int4_rows.h"
#include "q3vl/error.h"

namespace q3vl::kernels {

void check_int8_matmul(const Int8Matrix& w) {
  if (w.values == nullptr || w.scales == nullptr || w.rows <= 0 || w.cols <= 0 || !int4_block_supported(w.block)) {
    throw InvalidInput("int8 matmul: [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "] in blocks of " +
                       std::to_string(w.block) + " (need weights and scales, blocks of a power of two)");
  }
}

void run_int8_matmul(const Int8Matrix& w, const float* x, std::int64_t tokens, float* out, const ParallelFor& parallel, Int4Isa isa) {
  check_int8_matmul(w);
  // The kernels see the padded rows; the activations' missing columns quantize to zeros.
  const std::int64_t group = activation_group(w.block, w.row_bytes());
  RowsJob matrix;
  matrix.packed = w.values;
  matrix.scales = w.scales;
  matrix.rows = w.rows;
  matrix.cols = w.row_bytes();
  matrix.block = w.block;
  matrix.blocks_per_row = w.blocks();
  matrix.bits = 8;
  run_rows_matmul(matrix, w.cols, group, int8_rows_kernel(isa, group), x, tokens, out, parallel);
}

}  // namespace q3vl::kernels
