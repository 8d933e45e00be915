#include "ort/attention_op.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/decode_attention.h"
#include "kernels/half_floats.h"
#include "kernels/qk_norm_rotary.h"
#include "ort/onnx_session.h"
#include "ort/custom_op_support.h"
#include "package/format.h"
#include "util/shape.h"

namespace q3vl {
namespace {

const char* op_name(bool preamble, bool half_cache) {
  return half_cache ? package::kQkvAttentionHalfCacheOp : preamble ? package::kQkvAttentionOp : package::kGroupQueryAttentionOp;
}

std::vector<std::int64_t> shape_of(const Ort::ConstValue& value) { return value.GetTensorTypeAndShapeInfo().GetShape(); }

}  // namespace

void AttentionKernel::fail(const std::string& what) const { throw std::runtime_error(std::string("q3vl ") + op_name(preamble, half_cache) + ": " + what); }

AttentionKernel::AttentionKernel(const OrtKernelInfo* info, bool with_preamble, bool with_half_cache)
    : preamble(with_preamble), half_cache(with_half_cache) {
  const Ort::ConstKernelInfo kernel_info(info);
  if (preamble) epsilon = kernel_info.GetAttribute<float>("epsilon");
  num_heads = kernel_info.GetAttribute<std::int64_t>("num_heads");
  kv_heads = kernel_info.GetAttribute<std::int64_t>("kv_num_heads");
  scale = kernel_info.GetAttribute<float>("scale");
  if (num_heads <= 0 || kv_heads <= 0 || num_heads % kv_heads != 0) {
    fail(std::to_string(num_heads) + " query heads do not group over " + std::to_string(kv_heads) + " key/value heads");
  }
  const std::int64_t heads[] = {num_heads, kv_heads};
  const Ort::OpAttr attributes[] = {Ort::OpAttr("num_heads", &heads[0], 1, OrtOpAttrType::ORT_OP_ATTR_INT),
                                    Ort::OpAttr("kv_num_heads", &heads[1], 1, OrtOpAttrType::ORT_OP_ATTR_INT),
                                    Ort::OpAttr("scale", &scale, 1, OrtOpAttrType::ORT_OP_ATTR_FLOAT)};
  const char* type_names[] = {"T", "M"};
  const ONNXTensorElementDataType types[] = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32};
  prompts = Ort::Op::Create(info, "GroupQueryAttention", "com.microsoft", 1, type_names, types, 2, attributes, 3, 7, 3);
}

OrtStatusPtr AttentionKernel::ComputeV2(OrtKernelContext* raw) {
  try {
    Ort::KernelContext context(raw);
    if (!preamble) {
      std::vector<Ort::ConstValue> in;
      for (std::size_t i = 0; i < 7; ++i) in.push_back(context.GetInput(i));
      attend(context, raw, in);
      return nullptr;
    }
    // QkvAttention: q, k and v from the fused projection, normed and rotated, then attention on them.
    std::vector<Ort::ConstValue> in;
    for (std::size_t i = 0; i < 10; ++i) in.push_back(context.GetInput(i));
    const std::vector<std::int64_t> qkv_shape = shape_of(in[0]), cos_shape = shape_of(in[4]), rows_shape = shape_of(in[3]);
    const std::int64_t heads_total = num_heads + 2 * kv_heads;
    if (qkv_shape.size() != 3 || qkv_shape[2] % heads_total != 0 || rows_shape != std::vector<std::int64_t>{qkv_shape[0], qkv_shape[1]}) {
      fail("qkv " + shape_string(qkv_shape) + " and rotary rows " + shape_string(rows_shape) + " are not [B, S, (heads + 2 kv_heads) * D] and [B, S]");
    }
    const std::int64_t D = qkv_shape[2] / heads_total, tokens = qkv_shape[0] * qkv_shape[1];
    if (cos_shape.size() != 2 || cos_shape[1] != D / 2 || shape_of(in[5]) != cos_shape || shape_of(in[1]) != std::vector<std::int64_t>{D} ||
        shape_of(in[2]) != std::vector<std::int64_t>{D}) {
      fail("cos " + shape_string(cos_shape) + ", sin " + shape_string(shape_of(in[5])) + " and the norm weights " + shape_string(shape_of(in[1])) + ", " +
           shape_string(shape_of(in[2])) + " do not fit heads of " + std::to_string(D));
    }
    kernels::QkvPreamble p;
    p.heads = num_heads;
    p.kv_heads = kv_heads;
    p.head_dim = D;
    p.epsilon = epsilon;
    p.q_weight = in[1].GetTensorData<float>();
    p.k_weight = in[2].GetTensorData<float>();
    p.cos = in[4].GetTensorData<float>();
    p.sin = in[5].GetTensorData<float>();
    p.table_rows = cos_shape[0];
    p.token_rows = in[3].GetTensorData<std::int64_t>();
    std::vector<float> q(static_cast<std::size_t>(tokens * num_heads * D)), k(static_cast<std::size_t>(tokens * kv_heads * D)), v(k.size());
    kernels::run_qkv_preamble(p, in[0].GetTensorData<float>(), tokens, q.data(), k.data(), v.data(), ort_ops::session_parallel_for(context));
    Ort::Value q_value = tensor_view(q, {qkv_shape[0], qkv_shape[1], num_heads * D});
    Ort::Value k_value = tensor_view(k, {qkv_shape[0], qkv_shape[1], kv_heads * D});
    Ort::Value v_value = tensor_view(v, {qkv_shape[0], qkv_shape[1], kv_heads * D});
    attend(context, raw, {q_value.GetConst(), k_value.GetConst(), v_value.GetConst(), in[6], in[7], in[8], in[9]});
    return nullptr;
  } catch (const std::exception& e) {
    return ort_ops::error_status(e);
  }
}

void AttentionKernel::attend(Ort::KernelContext& context, OrtKernelContext* raw, const std::vector<Ort::ConstValue>& in) {
  const std::vector<std::int64_t> q_shape = shape_of(in[0]), k_shape = shape_of(in[1]), past_shape = shape_of(in[3]);
  if (q_shape.size() != 3 || past_shape.size() != 4 || q_shape[2] % num_heads != 0) {
    fail("query " + shape_string(q_shape) + " and past key " + shape_string(past_shape) + " are not [B, S, heads * D] and [B, kv_heads, P, D] for " +
         std::to_string(num_heads) + " heads");
  }
  if (in[6].GetTensorTypeAndShapeInfo().GetElementCount() != 1) fail("total_sequence_length must hold one value");
  const std::int64_t batch = q_shape[0], tokens = q_shape[1], D = q_shape[2] / num_heads;
  const std::int64_t total = in[6].GetTensorData<std::int32_t>()[0];
  // The total length counts the cached positions and the new ones; the present buffers' size
  // follows from it, so a hostile value must not ask for memory before anything else checks it.
  if (total < tokens || total > past_shape[2] + tokens) {
    fail("total_sequence_length " + std::to_string(total) + " is not within " + std::to_string(tokens) + " new and " + std::to_string(past_shape[2]) +
         " past positions");
  }
  const std::int64_t capacity = std::max(past_shape[2], total);
  if (in[5].GetTensorTypeAndShapeInfo().GetElementCount() != static_cast<std::size_t>(batch)) fail("seqlens_k must hold one length per sequence");
  const std::int32_t* seqlens = in[5].GetTensorData<std::int32_t>();
  // Each sequence's total length - 1, which ONNX Runtime's kernel trusts for prompts (it reads and
  // writes the cache by it; decode steps are checked by q3vl's kernel): within the present cache,
  // and for a later turn at least the new tokens.
  const bool later_turn = total != tokens;
  for (std::int64_t b = 0; tokens != 1 && b < batch; ++b) {
    if (seqlens[b] < 0 || seqlens[b] >= capacity || (later_turn && seqlens[b] + 1 < tokens)) {
      fail("seqlens_k " + std::to_string(seqlens[b]) + " of sequence " + std::to_string(b) + " does not fit " + std::to_string(tokens) +
           " new tokens in a cache of " + std::to_string(capacity));
    }
  }
  Ort::UnownedValue out = context.GetOutput(0, q_shape);
  Ort::UnownedValue present_key = context.GetOutput(1, {past_shape[0], past_shape[1], capacity, past_shape[3]});
  Ort::UnownedValue present_value = context.GetOutput(2, {past_shape[0], past_shape[1], capacity, past_shape[3]});
  if (tokens != 1 && half_cache) {
    prompt_over_half_cache(raw, in, out, present_key, present_value, capacity);
    return;
  }
  if (tokens != 1) {  // a prompt: ONNX Runtime's own kernel, which checks its inputs
    const OrtValue* inputs[7];
    for (std::size_t i = 0; i < 7; ++i) inputs[i] = in[i];
    OrtValue* outputs[] = {out, present_key, present_value};
    prompts.Invoke(raw, inputs, 7, outputs, 3);
    return;
  }
  const std::vector<std::int64_t> kv_shape{batch, 1, kv_heads * D};
  if (k_shape != kv_shape || shape_of(in[2]) != kv_shape || past_shape != std::vector<std::int64_t>{batch, kv_heads, past_shape[2], D} ||
      shape_of(in[4]) != past_shape) {
    fail("key " + shape_string(k_shape) + ", value " + shape_string(shape_of(in[2])) + ", past key " + shape_string(past_shape) + " and past value " +
         shape_string(shape_of(in[4])) + " do not match query " + shape_string(q_shape) + " with " + std::to_string(kv_heads) + " key/value heads");
  }
  // As GroupQueryAttention: a first prompt of one token (total 1) has nothing cached; otherwise a
  // sequence's new token follows its seqlens_k (= total length - 1) cached ones.
  std::vector<std::int64_t> cached(static_cast<std::size_t>(batch), 0);
  if (total != 1) {
    for (std::int64_t b = 0; b < batch; ++b) cached[static_cast<std::size_t>(b)] = seqlens[b];
  }
  kernels::DecodeAttention step;
  step.batch = batch;
  step.num_heads = num_heads;
  step.kv_heads = kv_heads;
  step.head_dim = D;
  step.scale = scale != 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(D));
  step.query = in[0].GetTensorData<float>();
  step.key = in[1].GetTensorData<float>();
  step.value = in[2].GetTensorData<float>();
  step.cache = half_cache ? kernels::CacheType::Float16 : kernels::CacheType::Float32;
  step.past_key = in[3].GetTensorRawData();
  step.past_value = in[4].GetTensorRawData();
  step.past_capacity = past_shape[2];
  step.present_key = present_key.GetTensorMutableRawData();
  step.present_value = present_value.GetTensorMutableRawData();
  step.capacity = capacity;
  step.cached = cached;
  step.out = out.GetTensorMutableData<float>();
  kernels::run_decode_attention(step, ort_ops::session_parallel_for(context));
}

// ONNX Runtime's GroupQueryAttention takes float32 caches. The cached positions of each sequence
// (its length less the prompt's tokens; none for a first prompt) are widened into float32 buffers,
// one for past and present alike when the op appends in place (as the runtime binds it: ONNX
// Runtime's kernel then appends in place too), and the positions the prompt leaves filled are
// narrowed back into the present halves. Buffers are left uninitialised: positions past a
// sequence's length are neither read nor written back.
void AttentionKernel::prompt_over_half_cache(OrtKernelContext* raw, const std::vector<Ort::ConstValue>& in, Ort::UnownedValue& out,
                                             Ort::UnownedValue& present_key, Ort::UnownedValue& present_value, std::int64_t capacity) {
  const std::vector<std::int64_t> past_shape = shape_of(in[3]), q_shape = shape_of(in[0]);
  const std::int64_t B = past_shape[0], H = past_shape[1], P = past_shape[2], D = past_shape[3], tokens = q_shape[1];
  if (shape_of(in[4]) != past_shape) fail("past key " + shape_string(past_shape) + " and past value " + shape_string(shape_of(in[4])) + " differ");
  const std::int32_t* seqlens = in[5].GetTensorData<std::int32_t>();
  const bool first_prompt = in[6].GetTensorData<std::int32_t>()[0] == tokens;
  const bool in_place = in[3].GetTensorRawData() == present_key.GetTensorRawData() && in[4].GetTensorRawData() == present_value.GetTensorRawData();
  const auto count = [](std::int64_t a, std::int64_t b, std::int64_t c, std::int64_t d) { return static_cast<std::size_t>(a * b * c * d); };
  const std::size_t present_size = count(B, H, capacity, D), past_size = in_place ? 0 : count(B, H, P, D);
  auto wide_present_key = std::make_unique_for_overwrite<float[]>(present_size);
  auto wide_present_value = std::make_unique_for_overwrite<float[]>(present_size);
  auto wide_past_key = std::make_unique_for_overwrite<float[]>(past_size);
  auto wide_past_value = std::make_unique_for_overwrite<float[]>(past_size);
  float* past_key = in_place ? wide_present_key.get() : wide_past_key.get();
  float* past_value = in_place ? wide_present_value.get() : wide_past_value.get();
  const auto* half_key = static_cast<const std::uint16_t*>(in[3].GetTensorRawData());
  const auto* half_value = static_cast<const std::uint16_t*>(in[4].GetTensorRawData());
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t cached = first_prompt ? 0 : std::min<std::int64_t>(P, seqlens[b] + 1 - tokens);
    for (std::int64_t h = 0; h < H; ++h) {
      const std::size_t from = count(b * H + h, P, D, 1);
      kernels::halves_to_floats(half_key + from, past_key + from, static_cast<std::size_t>(cached * D));
      kernels::halves_to_floats(half_value + from, past_value + from, static_cast<std::size_t>(cached * D));
    }
  }
  Ort::Value past_key_value = tensor_view(std::span<float>(past_key, in_place ? present_size : past_size), past_shape);
  Ort::Value past_value_value = tensor_view(std::span<float>(past_value, in_place ? present_size : past_size), past_shape);
  const std::vector<std::int64_t> present_shape{B, H, capacity, D};
  Ort::Value present_key_value = tensor_view(std::span<float>(wide_present_key.get(), present_size), present_shape);
  Ort::Value present_value_value = tensor_view(std::span<float>(wide_present_value.get(), present_size), present_shape);
  const OrtValue* inputs[] = {in[0], in[1], in[2], past_key_value, past_value_value, in[5], in[6]};
  OrtValue* outputs[] = {out, present_key_value, present_value_value};
  prompts.Invoke(raw, inputs, 7, outputs, 3);
  auto* key_out = static_cast<std::uint16_t*>(present_key.GetTensorMutableRawData());
  auto* value_out = static_cast<std::uint16_t*>(present_value.GetTensorMutableRawData());
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t filled = std::min<std::int64_t>(capacity, seqlens[b] + 1);
    for (std::int64_t h = 0; h < H; ++h) {
      const std::size_t at = count(b * H + h, capacity, D, 1);
      kernels::floats_to_halves(wide_present_key.get() + at, key_out + at, static_cast<std::size_t>(filled * D));
      kernels::floats_to_halves(wide_present_value.get() + at, value_out + at, static_cast<std::size_t>(filled * D));
    }
  }
}

// Output shapes: the attention's is the query's (GroupQueryAttention) or the fused projection's
// with heads * D columns (QkvAttention); the present caches' the past's, with a sequence length
// known only when the op runs.
template <bool kPreamble, bool kHalfCache>
AttentionOp<kPreamble, kHalfCache>::AttentionOp() {
  static_assert(kPreamble || !kHalfCache, "half-float caches come with the preamble only");
  OrtCustomOp::InferOutputShapeFn = [](const OrtCustomOp* op, OrtShapeInferContext* context) -> OrtStatusPtr {
    std::atomic<std::uint64_t>& fresh = static_cast<const AttentionOp*>(op)->fresh_names;
    const char* name = static_cast<const AttentionOp*>(op)->GetName();
    std::vector<std::int64_t> dims;
    std::vector<const char*> names;
    if (OrtStatusPtr status = ort_ops::input_shape(context, 0, dims, names)) return status;
    if (kPreamble) {
      if (dims.size() != 3) return Ort::Status((std::string("q3vl ") + name + ": qkv must have three dimensions").c_str(), ORT_INVALID_GRAPH).release();
      std::int64_t heads = 0, kv_heads = 0;
      try {
        Ort::ShapeInferContext shapes(&Ort::GetApi(), context);
        heads = shapes.GetAttrInt("num_heads");
        kv_heads = shapes.GetAttrInt("kv_num_heads");
      } catch (const std::exception& e) {
        return Ort::Status(e.what(), ORT_INVALID_GRAPH).release();
      }
      dims[2] = dims[2] > 0 && heads + 2 * kv_heads > 0 ? dims[2] / (heads + 2 * kv_heads) * heads : -1;
      names[2] = nullptr;
    }
    if (OrtStatusPtr status = ort_ops::set_float_output_shape(context, 0, dims, names, name, fresh)) return status;
    if (OrtStatusPtr status = ort_ops::input_shape(context, kPreamble ? 6 : 3, dims, names)) return status;
    if (dims.size() != 4) return Ort::Status((std::string("q3vl ") + name + ": the past key must have four dimensions").c_str(), ORT_INVALID_GRAPH).release();
    dims[2] = -1;
    names[2] = nullptr;
    for (std::size_t output : {std::size_t{1}, std::size_t{2}}) {
      const ONNXTensorElementDataType type = kHalfCache ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
      if (OrtStatusPtr status = ort_ops::set_float_output_shape(context, output, dims, names, name, fresh, type)) return status;
    }
    return nullptr;
  };
}

template <bool kPreamble, bool kHalfCache>
OrtStatusPtr AttentionOp<kPreamble, kHalfCache>::CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
  return ort_ops::create_kernel<AttentionKernel>(info, kernel, kPreamble, kHalfCache);
}

template <bool kPreamble, bool kHalfCache>
const char* AttentionOp<kPreamble, kHalfCache>::GetName() const {
  return op_name(kPreamble, kHalfCache);
}

template struct AttentionOp<false>;
template struct AttentionOp<true>;
template struct AttentionOp<true, true>;

}  // namespace q3vl
