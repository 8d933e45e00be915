#include "graph/graph_builder.h"

#include <fstream>

#include "model/dtype.h"
#include "q3vl/error.h"

namespace q3vl::graph {

std::size_t element_size(ElemType type) {
  switch (type) {
    case onnx::TensorProto_DataType_FLOAT:
    case onnx::TensorProto_DataType_INT32:
    case onnx::TensorProto_DataType_UINT32:
      return 4;
    case onnx::TensorProto_DataType_FLOAT16:
    case onnx::TensorProto_DataType_BFLOAT16:
    case onnx::TensorProto_DataType_INT16:
    case onnx::TensorProto_DataType_UINT16:
      return 2;
    case onnx::TensorProto_DataType_INT64:
    case onnx::TensorProto_DataType_UINT64:
    case onnx::TensorProto_DataType_DOUBLE:
      return 8;
    case onnx::TensorProto_DataType_UINT8:
    case onnx::TensorProto_DataType_INT8:
    case onnx::TensorProto_DataType_BOOL:
      return 1;
    default:
      throw Error("element_size: unsupported ONNX element type " + std::to_string(static_cast<int>(type)));
  }
}

GraphBuilder::GraphBuilder(std::string graph_name, Opsets opsets, ExternalDataWriter* external,
                           std::uint64_t external_threshold)
    : external_(external), external_threshold_(external_threshold), name_counter_(std::make_shared<std::uint64_t>(0)) {
  model_.set_ir_version(8);  // ONNX 1.12 (Debian's libonnx); ONNX Runtime reads it
  model_.set_producer_name("q3vl");
  model_.set_producer_version("0.1.0");
  onnx::OperatorSetIdProto* onnx_opset = model_.add_opset_import();
  onnx_opset->set_domain("");
  onnx_opset->set_version(opsets.onnx);
  onnx::OperatorSetIdProto* ms_opset = model_.add_opset_import();
  ms_opset->set_domain(kMicrosoftDomain);
  ms_opset->set_version(opsets.microsoft);
  model_.mutable_graph()->set_name(std::move(graph_name));
}

GraphBuilder::GraphBuilder(std::string graph_name, std::shared_ptr<std::uint64_t> name_counter)
    : external_(nullptr), external_threshold_(0), name_counter_(std::move(name_counter)) {
  model_.mutable_graph()->set_name(std::move(graph_name));
}

GraphBuilder GraphBuilder::subgraph(std::string graph_name) { return GraphBuilder(std::move(graph_name), name_counter_); }

std::shared_ptr<const onnx::GraphProto> GraphBuilder::body() const {
  return std::make_shared<const onnx::GraphProto>(model_.graph());
}

void GraphBuilder::set_value_info(onnx::ValueInfoProto& info, const std::string& name, ElemType type,
                                  const Shape& shape) {
  info.set_name(name);
  onnx::TypeProto_Tensor* tensor_type = info.mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(type);
  onnx::TensorShapeProto* shape_proto = tensor_type->mutable_shape();
  for (const Dim& dim : shape) {
    onnx::TensorShapeProto_Dimension* d = shape_proto->add_dim();
    if (const auto* fixed = std::get_if<std::int64_t>(&dim)) {
      d->set_dim_value(*fixed);
    } else {
      d->set_dim_param(std::get<std::string>(dim));
    }
  }
}

std::string GraphBuilder::input(const std::string& name, ElemType type, const Shape& shape) {
  set_value_info(*graph().add_input(), name, type, shape);
  return name;
}

void GraphBuilder::output(const std::string& value, const std::string& name, ElemType type, const Shape& shape) {
  if (value != name) {
    onnx::NodeProto* identity = graph().add_node();
    identity->set_op_type("Identity");
    identity->set_name(name + "_identity");
    identity->add_input(value);
    identity->add_output(name);
  }
  set_value_info(*graph().add_output(), name, type, shape);
}

onnx::TensorProto& GraphBuilder::new_initializer(const std::string& name, ElemType type,
                                                 const std::vector<std::int64_t>& dims) {
  onnx::TensorProto* tensor = graph().add_initializer();
  tensor->set_name(name);
  tensor->set_data_type(type);
  for (std::int64_t d : dims) tensor->add_dims(d);
  return *tensor;
}

std::string GraphBuilder::initializer(const std::string& name, ElemType type, const std::vector<std::int64_t>& dims,
                                      std::span<const std::uint8_t> bytes) {
  const auto count = checked_element_count(dims);
  if (!count || static_cast<std::uint64_t>(*count) * element_size(type) != bytes.size()) {
    throw Error("initializer " + name + ": " + std::to_string(bytes.size()) + " bytes do not match dims " +
                shape_string(dims));
  }
  onnx::TensorProto& tensor = new_initializer(name, type, dims);
  if (external_ != nullptr && bytes.size() >= external_threshold_) {
    point_to_external(tensor, *external_, external_->append(bytes));
  } else {
    tensor.set_raw_data(bytes.data(), bytes.size());
  }
  return name;
}

std::string GraphBuilder::initializer(const std::string& name, const std::vector<std::int64_t>& dims,
                                      std::span<const float> values) {
  return initializer(name, kFloat, dims,
                     {reinterpret_cast<const std::uint8_t*>(values.data()), values.size() * sizeof(float)});
}

std::string GraphBuilder::initializer_i64(const std::string& name, const std::vector<std::int64_t>& dims,
                                          std::span<const std::int64_t> values) {
  return initializer(name, kInt64, dims,
                     {reinterpret_cast<const std::uint8_t*>(values.data()), values.size() * sizeof(std::int64_t)});
}

std::string GraphBuilder::streamed_initializer(const std::string& name, ElemType type,
                                               const std::vector<std::int64_t>& dims) {
  if (external_ == nullptr) throw Error("streamed initializer " + name + " needs an external data file");
  const auto count = checked_element_count(dims);
  if (!count) throw Error("initializer " + name + ": bad dims " + shape_string(dims));
  onnx::TensorProto& tensor = new_initializer(name, type, dims);
  point_to_external(tensor, *external_, external_->begin_tensor(static_cast<std::uint64_t>(*count) * element_size(type)));
  return name;
}

std::string GraphBuilder::constant_i64(const std::vector<std::int64_t>& values, const std::string& hint) {
  const std::string name = unique_name(hint);
  onnx::TensorProto& tensor = new_initializer(name, kInt64, {static_cast<std::int64_t>(values.size())});
  tensor.set_raw_data(values.data(), values.size() * sizeof(std::int64_t));
  return name;
}

std::string GraphBuilder::scalar_f32(float value, const std::string& hint) {
  const std::string name = unique_name(hint);
  onnx::TensorProto& tensor = new_initializer(name, kFloat, {});
  tensor.set_raw_data(&value, sizeof value);
  return name;
}

std::string GraphBuilder::scalar_i64(std::int64_t value, const std::string& hint) {
  const std::string name = unique_name(hint);
  onnx::TensorProto& tensor = new_initializer(name, kInt64, {});
  tensor.set_raw_data(&value, sizeof value);
  return name;
}

std::string GraphBuilder::convert(const std::string& value, ElemType from, ElemType to) {
  return from == to ? value : op("Cast", {value}, {{"to", std::int64_t{to}}});
}

std::string GraphBuilder::unique_name(const std::string& prefix) {
  return prefix + "_" + std::to_string((*name_counter_)++);
}

std::vector<std::string> GraphBuilder::node(const std::string& op_type, const std::vector<std::string>& inputs,
                                            const std::vector<Attribute>& attributes, int num_outputs,
                                            const std::string& domain, const std::string& hint) {
  onnx::NodeProto* node = graph().add_node();
  const std::string base = unique_name(hint.empty() ? op_type : hint);
  node->set_name(base);
  node->set_op_type(op_type);
  if (!domain.empty()) node->set_domain(domain);
  for (const std::string& in : inputs) node->add_input(in);
  std::vector<std::string> outputs;
  for (int i = 0; i < num_outputs; ++i) {
    outputs.push_back(num_outputs == 1 ? base : base + "_out" + std::to_string(i));
    node->add_output(outputs.back());
  }
  for (const Attribute& attribute : attributes) {
    onnx::AttributeProto* a = node->add_attribute();
    a->set_name(attribute.name);
    std::visit(
        [a](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::int64_t>) {
            a->set_type(onnx::AttributeProto_AttributeType_INT);
            a->set_i(v);
          } else if constexpr (std::is_same_v<T, float>) {
            a->set_type(onnx::AttributeProto_AttributeType_FLOAT);
            a->set_f(v);
          } else if constexpr (std::is_same_v<T, std::string>) {
            a->set_type(onnx::AttributeProto_AttributeType_STRING);
            a->set_s(v);
          } else if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) {
            a->set_type(onnx::AttributeProto_AttributeType_INTS);
            for (std::int64_t x : v) a->add_ints(x);
          } else if constexpr (std::is_same_v<T, std::vector<float>>) {
            a->set_type(onnx::AttributeProto_AttributeType_FLOATS);
            for (float x : v) a->add_floats(x);
          } else {
            a->set_type(onnx::AttributeProto_AttributeType_GRAPH);
            *a->mutable_g() = *v;
          }
        },
        attribute.value);
  }
  return outputs;
}

std::string GraphBuilder::op(const std::string& op_type, const std::vector<std::string>& inputs,
                             const std::vector<Attribute>& attributes, const std::string& domain,
                             const std::string& hint) {
  return node(op_type, inputs, attributes, 1, domain, hint).front();
}

void GraphBuilder::save(const std::filesystem::path& path) {
  const std::filesystem::path temp = path.string() + ".partial";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot create " + temp.string());
    if (!model_.SerializeToOstream(&out)) {
      out.close();
      std::filesystem::remove(temp);
      throw Error("cannot serialize the ONNX model to " + temp.string() +
                  " (a model above 2 GB must keep its weights in external data)");
    }
    out.close();
    if (!out) {
      std::filesystem::remove(temp);
      throw Error("write failed on " + temp.string() + " (disk full?)");
    }
  }
  std::filesystem::rename(temp, path);
}

}  // namespace q3vl::graph
