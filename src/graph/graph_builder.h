#pragma once
// A thin, typed layer over the ONNX protobuf for writing models from C++: graph inputs and
// outputs with symbolic dims, initializers (large ones streamed to external data), nodes in
// any domain (com.microsoft contrib ops included), and an atomic save.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <onnx/onnx_pb.h>

#include "graph/external_data.h"

namespace q3vl::graph {

using ElemType = onnx::TensorProto_DataType;
inline constexpr ElemType kFloat = onnx::TensorProto_DataType_FLOAT;
inline constexpr ElemType kFloat16 = onnx::TensorProto_DataType_FLOAT16;
inline constexpr ElemType kBFloat16 = onnx::TensorProto_DataType_BFLOAT16;
inline constexpr ElemType kInt64 = onnx::TensorProto_DataType_INT64;
inline constexpr ElemType kInt32 = onnx::TensorProto_DataType_INT32;
inline constexpr ElemType kUInt8 = onnx::TensorProto_DataType_UINT8;
inline constexpr ElemType kBool = onnx::TensorProto_DataType_BOOL;

inline constexpr const char* kMicrosoftDomain = "com.microsoft";

// A dimension: fixed (int64) or symbolic ("batch", "sequence").
using Dim = std::variant<std::int64_t, std::string>;
using Shape = std::vector<Dim>;

struct Attribute {
  // A graph-valued attribute is a control-flow body (Loop, If), built with GraphBuilder::subgraph.
  using Value = std::variant<std::int64_t, float, std::string, std::vector<std::int64_t>, std::vector<float>,
                             std::shared_ptr<const onnx::GraphProto>>;
  std::string name;
  Value value;
};

std::size_t element_size(ElemType type);

struct Opsets {
  std::int64_t onnx = 17;
  std::int64_t microsoft = 1;
};

class GraphBuilder {
 public:
  // Initializers of at least `external_threshold` bytes go to `external` (if given).
  GraphBuilder(std::string graph_name, Opsets opsets = {}, ExternalDataWriter* external = nullptr,
               std::uint64_t external_threshold = 1024);

  // A builder for a control-flow body (Loop, If) of this graph. Its names never collide with this
  // graph's (ONNX forbids a body shadowing an outer value), its nodes may read this graph's values,
  // and its constants stay inline. Take the result with `body()` once it is complete.
  GraphBuilder subgraph(std::string graph_name);
  std::shared_ptr<const onnx::GraphProto> body() const;

  // Declares a graph input and returns its value name.
  std::string input(const std::string& name, ElemType type, const Shape& shape);
  // Declares `value` as a graph output (renaming it through Identity when the names differ).
  void output(const std::string& value, const std::string& name, ElemType type, const Shape& shape);

  // An initializer with raw little-endian bytes (size must match dims and type).
  std::string initializer(const std::string& name, ElemType type, const std::vector<std::int64_t>& dims,
                          std::span<const std::uint8_t> bytes);
  std::string initializer(const std::string& name, const std::vector<std::int64_t>& dims,
                          std::span<const float> values);
  std::string initializer_i64(const std::string& name, const std::vector<std::int64_t>& dims,
                              std::span<const std::int64_t> values);
  // Starts a large initializer whose bytes are produced in chunks (must go to external data).
  // Write exactly the declared bytes with `external()->append_piece` before the next initializer.
  std::string streamed_initializer(const std::string& name, ElemType type, const std::vector<std::int64_t>& dims);

  // Small constants used as op inputs (shapes, axes, scalars); inline in the model.
  std::string constant_i64(const std::vector<std::int64_t>& values, const std::string& hint = "const");
  std::string scalar_f32(float value, const std::string& hint = "scalar");
  std::string scalar_i64(std::int64_t value, const std::string& hint = "scalar");

  // Adds a node; returns its output names (`num_outputs` fresh names derived from `hint`).
  std::vector<std::string> node(const std::string& op_type, const std::vector<std::string>& inputs,
                                const std::vector<Attribute>& attributes = {}, int num_outputs = 1,
                                const std::string& domain = "", const std::string& hint = "");
  // The common single-output case.
  std::string op(const std::string& op_type, const std::vector<std::string>& inputs,
                 const std::vector<Attribute>& attributes = {}, const std::string& domain = "",
                 const std::string& hint = "");

  // `value` (of element type `from`) as element type `to`: a Cast node, or `value` itself.
  std::string convert(const std::string& value, ElemType from, ElemType to);

  // A fresh value name with this prefix.
  std::string unique_name(const std::string& prefix);

  ExternalDataWriter* external() const { return external_; }
  onnx::ModelProto& model() { return model_; }
  onnx::GraphProto& graph() { return *model_.mutable_graph(); }

  // Writes the model to `path` via a temporary file and a rename, so a failed or interrupted
  // save never leaves a file that looks complete.
  void save(const std::filesystem::path& path);

 private:
  GraphBuilder(std::string graph_name, std::shared_ptr<std::uint64_t> name_counter);
  onnx::TensorProto& new_initializer(const std::string& name, ElemType type,
                                     const std::vector<std::int64_t>& dims);
  void set_value_info(onnx::ValueInfoProto& info, const std::string& name, ElemType type, const Shape& shape);

  onnx::ModelProto model_;
  ExternalDataWriter* external_;
  std::uint64_t external_threshold_;
  std::shared_ptr<std::uint64_t> name_counter_;  // shared with subgraph builders
};

}  // namespace q3vl::graph
