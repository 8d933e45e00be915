#pragma once
// Checkpoint tensors into an ONNX graph: float initializers and linear layers (y = x Wᵀ + b) in
// the chosen weight format. Weights stream from the memory-mapped checkpoint to the external data
// file in slices, so no full model (and no large tensor twice) is ever held in memory.
#include <functional>
#include <string>

#include "graph/graph_builder.h"
#include "model/checkpoint.h"
#include "quant/block_quant.h"
#include "util/progress.h"

namespace q3vl {

enum class WeightFormat { F32, Int8, Int4 };

WeightFormat parse_weight_format(const std::string& text);  // "fp32", "int8", "int4"
std::string to_string(WeightFormat format);

struct LinearOptions {
  WeightFormat format = WeightFormat::F32;
  std::int64_t block_size = 32;
  bool symmetric = true;
  std::int64_t accuracy_level = 4;  // MatMulNBits: 4 = int8 activations (fast on CPU)
};

class WeightWriter {
 public:
  // `progress` (optional) advances by the checkpoint bytes each exported tensor consumed.
  WeightWriter(graph::GraphBuilder& g, const Checkpoint& checkpoint, ProgressBar* progress = nullptr)
      : g_(g), checkpoint_(checkpoint), progress_(progress) {}

  // Float weights and quantization scales are written in this type (float32 by default; float16
  // for fp16 graphs).
  void set_float_type(graph::ElemType type) { float_type_ = type; }
  graph::ElemType float_type() const { return float_type_; }

  // The checkpoint tensor as a float initializer of the same shape (float_type() unless given).
  std::string float_tensor(const std::string& checkpoint_name);
  std::string float_tensor(const std::string& checkpoint_name, graph::ElemType type);
  // y = x · Wᵀ (+ b) for the checkpoint's Linear weight [out, in] (bias may be empty).
  std::string linear(const std::string& x, const std::string& weight, const std::string& bias,
                     const LinearOptions& options, const std::string& hint);
  // The same for a weight stored with more dims whose row-major layout is [out, in] (Conv3d kernels).
  std::string linear(const std::string& x, const TensorView& weight, std::int64_t out_features,
                     std::int64_t in_features, const std::string& bias, const LinearOptions& options,
                     const std::string& hint);
  // Several Linear layers on the same input as one matmul (their weights stacked along the output
  // features), split back into one output per weight: fewer, larger kernels per step.
  std::vector<std::string> stacked_linear(const std::string& x, const std::vector<std::string>& weights,
                                          const LinearOptions& options, const std::string& hint);
  // A stack of `experts` matrices [out, in] (a MoE expert tensor in either on-disk layout, see
  // model/expert_layout.h) as initializers for ONNX Runtime's MoE / QMoE: row r of each expert is
  // the source's row rows[r] (the order the op wants, e.g. gate and up interleaved). Float:
  // `weights` [E, out, in] in float_type(). int8/int4 (symmetric, block-wise as MatMulNBits):
  // `weights` uint8 [E, out, in * bits / 8] and `scales` [E, out, blocks].
  struct ExpertStack {
    std::string weights, scales;
    std::int64_t bits = 0, block_size = 0;  // 0 for float
  };
  ExpertStack expert_matrices(const std::string& checkpoint_name, std::int64_t experts, std::int64_t out, std::int64_t in,
                              std::span<const std::int64_t> rows, const LinearOptions& options, const std::string& name);
  // Rows of an embedding table [rows, width] at `indices` (any shape) -> [..., width]; int8/int4
  // tables are gathered and dequantized by GatherBlockQuantized.
  std::string gather_rows(const std::string& indices, const std::string& table, const LinearOptions& options);

 private:
  struct Rows {  // a weight seen as [out, in]
    TensorView tensor;
    std::int64_t out;
    std::int64_t in;
  };
  std::string matmul(const std::string& x, const std::vector<Rows>& parts, const LinearOptions& options,
                     const std::string& hint);
  std::string transposed_float(const std::vector<Rows>& parts, const std::string& name);
  struct QuantizedTensors {
    std::string packed, scales, zero_points;  // zero_points empty when symmetric
    std::int64_t rows, cols, bits, block_size;
  };
  // Quantizes the rows of `parts` (stacked) into initializers; the packed bytes are shaped
  // [rows, blocks, blob] for MatMulNBits or, with `flat_rows`, [rows, cols * bits / 8].
  QuantizedTensors quantize_rows(const std::vector<Rows>& parts, const std::string& name, const LinearOptions& options,
                                 bool flat_rows);
  std::string quantized(const std::string& x, const std::vector<Rows>& parts, const std::string& name,
                        const LinearOptions& options, const std::string& hint);

  // Calls `use` with each expert's matrix [out, in] (rows reordered), one expert at a time.
  void for_each_expert(const std::string& checkpoint_name, std::int64_t experts, std::int64_t out, std::int64_t in,
                       std::span<const std::int64_t> rows, const std::function<void(std::span<const float>)>& use);

  // Elements [first, first + out.size()) of `tensor` as float, read for the last time: their pages go.
  void read_once(const TensorView& tensor, std::size_t first, std::span<float> out);
  void done_with(const TensorView& tensor);  // progress, and let its pages go

  // Appends float values to the external data in `type` (float32 or float16).
  void append_values(std::span<const float> values, graph::ElemType type);
  std::string small_initializer(const std::string& name, const std::vector<std::int64_t>& dims,
                                std::span<const float> values, graph::ElemType type);

  graph::GraphBuilder& g_;
  const Checkpoint& checkpoint_;
  ProgressBar* progress_;
  graph::ElemType float_type_ = graph::kFloat;
};

}  // namespace q3vl
