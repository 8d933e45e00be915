#pragma once
// The vision encoder's MLP, fc2(gelu_tanh(fc1(x) + b1)) + b2 with int8 weights, a block of patch rows
// at a time: the hidden activations (four hidden widths a patch on Qwen3-VL) exist for one block
// only, never for the whole image. As two Int8MatMul ops, the up projection's output was the
// largest buffer of a big image's vision pass; here the same arithmetic (each block one pass of
// the int8 kernel, kernels/int8_matmul.h, which quantizes and multiplies 256 rows a pass anyway)
// gives the same bytes.
#include <cstdint>
#include <vector>

#include "kernels/int4_matrices.h"
#include "kernels/int8_matmul.h"
#include "kernels/workspace_pool.h"

namespace q3vl::kernels {

struct PatchMlp {
  Int8Matrix up;                  // [hidden, D]
  const float* up_bias = nullptr;  // [hidden], or null
  Int8Matrix down;                 // [D, hidden]
  const float* down_bias = nullptr;  // [D], or null
};

// Rows of patches a block: the int8 kernel's pass.
constexpr std::int64_t kPatchMlpRows = 256;

// The hidden activations of one block, kept by the op from call to call (kernels/workspace_pool.h).
struct PatchMlpScratch : WorkspacePool<std::vector<float>> {
  PatchMlpScratch() : WorkspacePool(std::size_t{16} << 20) {}
};

// Throws InvalidInput where the shapes do not chain (down's columns are up's rows, up's columns
// down's rows) or a matrix is malformed.
void check_patch_mlp(const PatchMlp& mlp);
// out[t] = mlp(x[t]) for `tokens` rows x [tokens, D], out [tokens, D].
void run_patch_mlp(const PatchMlp& mlp, const float* x, std::int64_t tokens, float* out, const ParallelFor& parallel, PatchMlpScratch& scratch,
                   Int4Isa isa = Int4Isa::Best);

}  // namespace q3vl::kernels
