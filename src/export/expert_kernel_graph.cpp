#include "export/expert_kernel_graph.h"

#include <string>

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

// QMoE inputs: 0 input, 1 router logits, 2/3 fc1 weights/scales, 4 fc1 bias, 5/6 fc2 weights/scales,
// then optional biases, fc3 and zero points, all absent in what q3vl exports.
bool replaceable(const onnx::NodeProto& node) {
  if (node.op_type() != "QMoE" || node.domain() != graph::kMicrosoftDomain || node.input_size() < 7) return false;
  for (int i = 0; i < node.input_size(); ++i) {
    const bool used = i <= 3 || i == 5 || i == 6;
    if (used == node.input(i).empty()) return false;
  }
  const onnx::AttributeProto* activation = attribute(node, "activation_type");
  return int_attribute(node, "expert_weight_bits", 4) == 4 && int_attribute(node, "swiglu_fusion", 0) == 1 &&
         activation != nullptr && activation->s() == "swiglu" && int_attribute(node, "block_size", 0) > 0 &&
         attribute(node, "k") != nullptr;
}

}  // namespace

std::int64_t use_int4_expert_kernel(onnx::ModelProto& model) {
  std::int64_t replaced = 0;
  for (onnx::NodeProto& node : *model.mutable_graph()->mutable_node()) {
    if (!replaceable(node)) continue;
    onnx::NodeProto experts;
    experts.set_name(node.name() + ".int4_experts");
    experts.set_op_type(package::kInt4ExpertsOp);
    experts.set_domain(package::kQ3vlOpDomain);
    for (int i : {0, 1, 2, 3, 5, 6}) experts.add_input(node.input(i));
    experts.add_output(node.output(0));
    for (const char* name : {"k", "normalize_routing_weights", "block_size"}) {
      onnx::AttributeProto* a = experts.add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(int_attribute(node, name, 0));
    }
    node = std::move(experts);
    ++replaced;
  }
  if (replaced > 0) {
    onnx::OperatorSetIdProto* opset = model.add_opset_import();
    opset->set_domain(package::kQ3vlOpDomain);
    opset->set_version(1);
  }
  return replaced;
}

}  // namespace q3vl
