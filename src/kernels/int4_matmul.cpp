#include "kernels/int4_matmul.h"

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/int4_rows.h"
#include "kernels/row_chunks.h"
#include "q3vl/error.h"

namespace q3vl::kernels {
namespace {

// Weight rows per task of a prompt (bound by compute; a decode step's rows go in chunks,
// row_chunks.h): each task takes every token of the pass against these rows.
constexpr std::int64_t kRowsPerTask = 64;
// Tokens per pass, bounding the quantized activations whatever the prompt length.
constexpr std::int64_t kTokensPerPass = 256;

}  // namespace

void check_int4_matmul(const Int4Matrices& w) {
  if ((w.scales == nullptr) == (w.half_scales == nullptr)) throw InvalidInput("int4 matmul: give float or half scales, one of the two");
  if (w.experts != 1 || w.rows <= 0 || w.cols <= 0 || !int4_block_supported(w.block) || w.cols % w.block != 0) {
    throw InvalidInput("int4 matmul: " + std::to_string(w.experts) + " matrices [" + std::to_string(w.rows) + ", " +
                       std::to_string(w.cols) + "] in blocks of " + std::to_string(w.block) +
                       " (need one matrix of whole blocks, a power of two)");
  }
}

void run_rows_matmul(const RowsJob& matrix, std::int64_t x_cols, std::int64_t group, RowsKernel kernel, const float* x, std::int64_t tokens,
                     float* out, const ParallelFor& parallel) {
  const std::int64_t chunks = (matrix.rows + kRowsPerTask - 1) / kRowsPerTask;
  QuantizedActivations x_q;
  std::vector<std::int64_t> token_rows;
  for (std::int64_t t0 = 0; t0 < tokens; t0 += kTokensPerPass) {
    const std::int64_t n = std::min(kTokensPerPass, tokens - t0);
    x_q.reset(n, x_cols, group, matrix.bits);
    parallel(static_cast<std::size_t>(n), [&](std::size_t t) { x_q.quantize(static_cast<std::int64_t>(t), x + (t0 + static_cast<std::int64_t>(t)) * x_cols); });
    token_rows.resize(static_cast<std::size_t>(n));
    std::iota(token_rows.begin(), token_rows.end(), std::int64_t{0});
    const auto rows_job = [&](std::int64_t r0, std::int64_t rows) {
      RowsJob job = matrix;
      job.packed += static_cast<std::size_t>(r0) * matrix.row_bytes();
      if (job.scales != nullptr) job.scales += r0 * matrix.blocks_per_row;
      if (job.half_scales != nullptr) job.half_scales += r0 * matrix.blocks_per_row;
      job.rows = rows;
      job.activations = &x_q;
      job.tokens = token_rows.data();
      job.token_count = n;
      job.out = out + t0 * matrix.rows + r0;
      job.out_stride = matrix.rows;
      kernel(job);
    };
    if (n <= kStreamingTokens) {
      const std::int64_t rows[] = {matrix.rows};
      for_each_row_chunk(rows, matrix.row_bytes_with_scales(), parallel, [&](std::size_t, std::int64_t r0, std::int64_t count) { rows_job(r0, count); });
    } else {
      parallel(static_cast<std::size_t>(chunks), [&](std::size_t task) {
        const std::int64_t r0 = static_cast<std::int64_t>(task) * kRowsPerTask;
        rows_job(r0, std::min(kRowsPerTask, matrix.rows - r0));
      });
    }
  }
}

void run_int4_matmul(const Int4Matrices& w, const float* x, std::int64_t tokens, float* out, const ParallelFor& parallel, Int4Isa isa) {
  check_int4_matmul(w);
  const std::int64_t group = activation_group(w);
  RowsJob matrix;
  point_at_rows(matrix, w, 0, 0);
  matrix.rows = w.rows;
  run_rows_matmul(matrix, matrix.cols, group, int4_rows_kernel(isa, group), x, tokens, out, parallel);
}

}  // namespace q3vl::kernels
