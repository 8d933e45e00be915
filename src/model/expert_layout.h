#pragma once
// The two on-disk layouts of Qwen3-VL MoE expert tensors (docs/model-math.md §2.3) and how
// Hugging Face tells them apart. Released checkpoints store each expert as [in, out] (applied as
// x @ W); transformers 5 save_pretrained writes its in-memory layout [out, in] (applied as
// F.linear, x @ Wᵀ). The checkpoint reader, the random checkpoint writer and the exporter all
// decide through expert_layout, so they cannot disagree.
#include <cstdint>
#include <string>
#include <vector>

namespace q3vl {

enum class ExpertLayout {
  OutIn,  // [E, out, in]: transformers 5.12's in-memory layout (what save_pretrained writes)
  InOut,  // [E, in, out]: the released checkpoints (Qwen3-VL-30B-A3B, 235B-A22B)
};

// The shape of an expert tensor of `experts` matrices out x in stored in `layout`.
std::vector<std::int64_t> expert_tensor_shape(ExpertLayout layout, std::int64_t experts, std::int64_t out,
                                              std::int64_t in);

// HF's rule (transformers 5.12 conversion_mapping.py, "qwen3_vl_moe": Transpose(1, 2,
// check_dims=True) per expert tensor): a shape equal to the in-memory [E, out, in] is taken as is,
// anything else is transposed on dims 1 and 2, so a square expert (out == in) counts as OutIn.
// Stricter than HF: a shape that is neither layout throws InvalidInput naming `tensor`.
ExpertLayout expert_layout(const std::vector<std::int64_t>& shape, std::int64_t experts, std::int64_t out,
                           std::int64_t in, const std::string& tensor);

}  // namespace q3vl
