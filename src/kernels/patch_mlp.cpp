#include "kernels/patch_mlp.h"

#include <algorithm>
#include <string>

#include "kernels/gelu.h"
#include "q3vl/error.h"

namespace q3vl::kernels {

void check_patch_mlp(const PatchMlp& mlp) {
  check_int8_matmul(mlp.up);
  check_int8_matmul(mlp.down);
  if (mlp.down.cols != mlp.up.rows || mlp.down.rows != mlp.up.cols) {
    throw InvalidInput("patch MLP: up [" + std::to_string(mlp.up.rows) + ", " + std::to_string(mlp.up.cols) + "] and down [" +
                       std::to_string(mlp.down.rows) + ", " + std::to_string(mlp.down.cols) + "] do not chain");
  }
}

void run_patch_mlp(const PatchMlp& mlp, const float* x, std::int64_t tokens, float* out, const ParallelFor& parallel, PatchMlpScratch& scratch,
                   Int4Isa isa) {
  check_patch_mlp(mlp);
  const std::int64_t D = mlp.up.cols, hidden = mlp.up.rows;
  std::unique_ptr<std::vector<float>> hidden_rows = scratch.take();
  hidden_rows->resize(static_cast<std::size_t>(std::min(tokens, kPatchMlpRows) * hidden));
  for (std::int64_t t0 = 0; t0 < tokens; t0 += kPatchMlpRows) {
    const std::int64_t rows = std::min(kPatchMlpRows, tokens - t0);
    float* h = hidden_rows->data();
    run_int8_matmul(mlp.up, x + t0 * D, rows, h, parallel, isa);
    bias_activation_rows(h, rows, hidden, mlp.up_bias, true, parallel, isa);
    run_int8_matmul(mlp.down, h, rows, out + t0 * D, parallel, isa);
    bias_activation_rows(out + t0 * D, rows, D, mlp.down_bias, false, parallel, isa);
  }
  const std::size_t bytes = hidden_rows->capacity() * sizeof(float);
  scratch.give_back(std::move(hidden_rows), bytes);
  scratch.trim();
}

}  // namespace q3vl::kernels
