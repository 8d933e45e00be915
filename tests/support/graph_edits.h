#pragma once
// Edits of an exported graph for hostile-graph tests: a node whose attributes disagree with its
// tensors must fail the run with an error, never crash.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include "q3vl/error.h"

namespace q3vl::test {

// An edit that sets integer attribute `name` to `value` on every node of type `op_type`.
inline std::function<void(onnx::ModelProto&)> set_attribute(const std::string& op_type, const std::string& name, std::int64_t value) {
  return [op_type, name, value](onnx::ModelProto& model) {
    for (onnx::NodeProto& node : *model.mutable_graph()->mutable_node()) {
      for (onnx::AttributeProto& a : *node.mutable_attribute()) {
        if (node.op_type() == op_type && a.name() == name) a.set_i(value);
      }
    }
  };
}

// An edit that adds integer attribute `name` = `value` to every node of type `op_type`.
inline std::function<void(onnx::ModelProto&)> add_attribute(const std::string& op_type, const std::string& name, std::int64_t value) {
  return [op_type, name, value](onnx::ModelProto& model) {
    for (onnx::NodeProto& node : *model.mutable_graph()->mutable_node()) {
      if (node.op_type() != op_type) continue;
      onnx::AttributeProto* a = node.add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(value);
    }
  };
}

using GraphEdit = std::function<void(onnx::ModelProto&)>;

// For each (edit, message): `run(edit)` must throw an Error whose text contains the message.
// Returns how many did (the caller checks it against the number of cases).
inline std::size_t expect_errors(const std::vector<std::pair<GraphEdit, std::string>>& cases, const std::function<void(const GraphEdit&)>& run) {
  std::size_t checked = 0;
  for (const auto& [edit, expected] : cases) {
    try {
      run(edit);
      ADD_FAILURE() << "ran with a node that should fail: " << expected;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
      ++checked;
    }
  }
  return checked;
}

}  // namespace q3vl::test
