#pragma once
// GroupQueryAttention (domain package::kQ3vlOpDomain): ONNX Runtime's com.microsoft
// GroupQueryAttention with the same inputs, outputs and attributes (float32, no rotary, softcap,
// local window or smooth softmax), whose decode steps (one token per sequence) run on q3vl's kernel
// (kernels/decode_attention.h). Prompts (more than one token) are handed to ONNX Runtime's own
// kernel, created inside this one, so they compute exactly what they did before.
//
// QkvAttentionHalfCache: QkvAttention whose past and present caches are IEEE half floats (decode
// steps read them as such; a prompt's cached positions are widened to float32 for ONNX Runtime's
// kernel and the positions it filled narrowed back).
//
// Inputs: query [B, S, heads * D], key and value [B, S, kv_heads * D], past key and value
// [B, kv_heads, P, D] (the present outputs' buffers when the cache is appended in place), seqlens_k
// [B] int32 (each sequence's total length - 1), total_sequence_length [1] int32; outputs: attention
// [B, S, heads * D], present key and value [B, kv_heads, max(P, total), D].
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <onnxruntime_cxx_api.h>

namespace q3vl {

struct AttentionKernel {
  AttentionKernel(const OrtKernelInfo* info, bool preamble, bool half_cache);
  OrtStatusPtr ComputeV2(OrtKernelContext* context);

  bool preamble = false;    // QkvAttention
  bool half_cache = false;  // QkvAttentionHalfCache
  std::int64_t num_heads = 0, kv_heads = 0;
  float scale = 0.0f, epsilon = 0.0f;
  Ort::Op prompts{nullptr};  // ONNX Runtime's GroupQueryAttention

 private:
  [[noreturn]] void fail(const std::string& what) const;  // throws naming the op
  // GroupQueryAttention's seven inputs.
  void attend(Ort::KernelContext& context, OrtKernelContext* raw, const std::vector<Ort::ConstValue>& in);
  // A prompt over half-float caches: through ONNX Runtime's kernel on float32 copies.
  void prompt_over_half_cache(OrtKernelContext* raw, const std::vector<Ort::ConstValue>& in, Ort::UnownedValue& out, Ort::UnownedValue& present_key,
                              Ort::UnownedValue& present_value, std::int64_t capacity);
};

// kPreamble false: GroupQueryAttention (seven inputs); true: QkvAttention (ten); kHalfCache (with
// the preamble only): QkvAttentionHalfCache.
template <bool kPreamble, bool kHalfCache = false>
struct AttentionOp : Ort::CustomOpBase<AttentionOp<kPreamble, kHalfCache>, AttentionKernel, /*WithStatus=*/true> {
  AttentionOp();
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const;
  std::size_t GetInputTypeCount() const { return kPreamble ? 10 : 7; }
  ONNXTensorElementDataType GetInputType(std::size_t index) const {
    if (kPreamble && index == 3) return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;  // rotary rows
    if (kHalfCache && (index == 6 || index == 7)) return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;  // past key and value
    return index >= (kPreamble ? 8u : 5u) ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  std::size_t GetOutputTypeCount() const { return 3; }
  ONNXTensorElementDataType GetOutputType(std::size_t index) const {
    return kHalfCache && index > 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }

  mutable std::atomic<std::uint64_t> fresh_names{0};  // names for unknown dimensions (ort/custom_op_support.h)
};

using GroupQueryAttentionOp = AttentionOp<false>;
using QkvAttentionOp = AttentionOp<true>;
using QkvAttentionHalfCacheOp = AttentionOp<true, true>;
extern template struct AttentionOp<false>;
extern template struct AttentionOp<true>;
extern template struct AttentionOp<true, true>;

}  // namespace q3vl
