#include "export/kernel_graph.h"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "graph/graph_builder.h"
#include "package/format.h"

namespace q3vl {
namespace {

const onnx::AttributeProto* attribute(const onnx::NodeProto& node, const std::string& name) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

std::int64_t int_attribute(const onnx::NodeProto& node, const std::string& name, std::int64_t fallback) {
  const onnx::AttributeProto* a = attribute(node, name);
  return a != nullptr ? a->i() : fallback;
}

// True when exactly the inputs in `used` are given (the others absent or empty names).
bool inputs_exactly(const onnx::NodeProto& node, std::initializer_list<int> used) {
  for (int i = 0; i < node.input_size(); ++i) {
    const bool wanted = std::find(used.begin(), used.end(), i) != used.end();
    if (wanted == node.input(i).empty()) return false;
  }
  for (int i : used) {
    if (i >= node.input_size()) return false;
  }
  return true;
}

// QMoE inputs: 0 input, 1 router logits, 2/3 fc1 weights/scales, 4 fc1 bias, 5/6 fc2 weights/scales,
// then optional biases, fc3 and zero points, all absent in what q3vl exports.
bool replaceable_experts(const onnx::NodeProto& node) {
  if (node.op_type() != "QMoE" || node.domain() != graph::kMicrosoftDomain || !inputs_exactly(node, {0, 1, 2, 3, 5, 6})) return false;
  const onnx::AttributeProto* activation = attribute(node, "activation_type");
  return int_attribute(node, "expert_weight_bits", 4) == 4 && int_attribute(node, "swiglu_fusion", 0) == 1 &&
         activation != nullptr && activation->s() == "swiglu" && int_attribute(node, "block_size", 0) > 0 &&
         attribute(node, "k") != nullptr;
}

// MatMulNBits inputs: 0 A, 1 B, 2 scales, then zero points, group index and bias, absent here.
bool replaceable_matmul(const onnx::NodeProto& node, const std::unordered_map<std::string, int>& initializer_types) {
  if (node.op_type() != "MatMulNBits" || node.domain() != graph::kMicrosoftDomain || !inputs_exactly(node, {0, 1, 2})) return false;
  const std::int64_t K = int_attribute(node, "K", 0), N = int_attribute(node, "N", 0), block = int_attribute(node, "block_size", 0);
  const auto scales = initializer_types.find(node.input(2));
  return int_attribute(node, "bits", 4) == 4 && int_attribute(node, "accuracy_level", 0) == 4 && N > 0 && K > 0 && block >= 16 &&
         (block & (block - 1)) == 0 && K % block == 0 && scales != initializer_types.end() &&
         scales->second == onnx::TensorProto::FLOAT;
}

void copy_int_attributes(const onnx::NodeProto& from, onnx::NodeProto& to, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    onnx::AttributeProto* a = to.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(int_attribute(from, name, 0));
  }
}

onnx::NodeProto q3vl_node(const onnx::NodeProto& node, const char* op, const char* suffix, std::initializer_list<int> inputs) {
  onnx::NodeProto replacement;
  replacement.set_name(node.name() + suffix);
  replacement.set_op_type(op);
  replacement.set_domain(package::kQ3vlOpDomain);
  for (int i : inputs) replacement.add_input(node.input(i));
  replacement.add_output(node.output(0));
  return replacement;
}

}  // namespace

KernelRewrite use_q3vl_kernels(onnx::ModelProto& model) {
  std::unordered_map<std::string, int> initializer_types;
  for (const onnx::TensorProto& t : model.graph().initializer()) initializer_types[t.name()] = t.data_type();
  KernelRewrite done;
  for (onnx::NodeProto& node : *model.mutable_graph()->mutable_node()) {
    if (replaceable_experts(node)) {
      onnx::NodeProto experts = q3vl_node(node, package::kInt4ExpertsOp, ".int4_experts", {0, 1, 2, 3, 5, 6});
      copy_int_attributes(node, experts, {"k", "normalize_routing_weights", "block_size"});
      node = std::move(experts);
      ++done.experts;
    } else if (replaceable_matmul(node, initializer_types)) {
      onnx::NodeProto matmul = q3vl_node(node, package::kInt4MatMulOp, ".int4_matmul", {0, 1, 2});
      copy_int_attributes(node, matmul, {"K", "N", "block_size"});
      node = std::move(matmul);
      ++done.matmuls;
    }
  }
  if (done.total() > 0) {
    onnx::OperatorSetIdProto* opset = model.add_opset_import();
    opset->set_domain(package::kQ3vlOpDomain);
    opset->set_version(1);
  }
  return done;
}

}  // namespace q3vl
