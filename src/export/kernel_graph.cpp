#include "export/kernel_graph.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "graph/graph_builder.h"
#include "kernels/int4_matrices.h"
#include "math/half_float.h"
#include "package/format.h"
#include "q3vl/error.h"
#include "util/shape.h"

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
         activation != nullptr && activation->s() == "swiglu" && kernels::int4_block_supported(int_attribute(node, "block_size", 0)) &&
         attribute(node, "k") != nullptr;
}

// MatMulNBits inputs: 0 A, 1 B, 2 scales, then zero points, group index and bias, absent here. int8
// rows may end in a padded block (the 8B and larger vision MLP's 4304 columns); int4 ones may not.
bool replaceable_matmul(const onnx::NodeProto& node, const std::unordered_map<std::string, int>& initializer_types, KernelWidths widths) {
  if (node.op_type() != "MatMulNBits" || node.domain() != graph::kMicrosoftDomain || !inputs_exactly(node, {0, 1, 2})) return false;
  const std::int64_t K = int_attribute(node, "K", 0), N = int_attribute(node, "N", 0), block = int_attribute(node, "block_size", 0);
  const std::int64_t bits = int_attribute(node, "bits", 4);
  const auto scales = initializer_types.find(node.input(2));
  return ((bits == 4 && widths.int4) || (bits == 8 && widths.int8)) && int_attribute(node, "accuracy_level", 0) == 4 && N > 0 && K > 0 &&
         kernels::int4_block_supported(block) && (K % block == 0 || bits == 8) && scales != initializer_types.end() &&
         scales->second == onnx::TensorProto::FLOAT;
}

// GroupQueryAttention as the exporter writes it: a float32 cache (input 3), the seven inputs (no
// rotary caches, position ids, bias or sinks) and no attribute but the heads and the scale (so no
// rotary, softcap, local window or smooth softmax).
bool replaceable_attention(const onnx::NodeProto& node, const std::unordered_map<std::string, int>& graph_input_types) {
  if (node.op_type() != "GroupQueryAttention" || node.domain() != graph::kMicrosoftDomain || !inputs_exactly(node, {0, 1, 2, 3, 4, 5, 6}) ||
      node.output_size() != 3 || attribute(node, "num_heads") == nullptr || attribute(node, "kv_num_heads") == nullptr) {
    return false;
  }
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() != "num_heads" && a.name() != "kv_num_heads" && a.name() != "scale") return false;
  }
  const auto past = graph_input_types.find(node.input(3));
  return past != graph_input_types.end() && past->second == onnx::TensorProto::FLOAT;
}

void add_int_attribute(onnx::NodeProto& node, const char* name, std::int64_t value) {
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

void copy_int_attributes(const onnx::NodeProto& from, onnx::NodeProto& to, std::initializer_list<const char*> names) {
  for (const char* name : names) add_int_attribute(to, name, int_attribute(from, name, 0));
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

// A float32 initializer's values, inline or from its external data file under `dir`.
std::vector<float> float_values(const onnx::TensorProto& tensor, const std::filesystem::path& dir) {
  const std::optional<std::int64_t> elements = checked_element_count(std::span<const std::int64_t>(tensor.dims().data(), static_cast<std::size_t>(tensor.dims_size())));
  if (!elements) throw Error("scales " + tensor.name() + ": bad dims");
  const std::int64_t count = *elements;
  const std::size_t bytes = static_cast<std::size_t>(count) * sizeof(float);
  std::vector<float> values(static_cast<std::size_t>(count));
  if (tensor.data_location() != onnx::TensorProto_DataLocation_EXTERNAL) {
    if (tensor.raw_data().size() == bytes) {
      std::memcpy(values.data(), tensor.raw_data().data(), bytes);
    } else if (tensor.float_data_size() == count) {
      std::copy(tensor.float_data().begin(), tensor.float_data().end(), values.begin());
    } else {
      throw Error("scales " + tensor.name() + ": not " + std::to_string(count) + " floats");
    }
    return values;
  }
  std::string location;
  std::uint64_t offset = 0, length = 0;
  for (const onnx::StringStringEntryProto& e : tensor.external_data()) {
    if (e.key() == "location") location = e.value();
    if (e.key() == "offset") offset = std::stoull(e.value());
    if (e.key() == "length") length = std::stoull(e.value());
  }
  std::ifstream in(dir / location, std::ios::binary);
  if (location.empty() || length != bytes || !in.seekg(static_cast<std::streamoff>(offset)) ||
      !in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(bytes))) {
    throw Error("scales " + tensor.name() + ": cannot read " + std::to_string(bytes) + " bytes from " + (dir / location).string());
  }
  return values;
}

// Every value read anywhere in `graph`, its subgraphs' outer-scope reads included.
void collect_reads(const onnx::GraphProto& graph, std::unordered_set<std::string>& read) {
  for (const onnx::NodeProto& node : graph.node()) {
    for (const std::string& in : node.input()) read.insert(in);
    for (const onnx::AttributeProto& a : node.attribute()) {
      if (a.has_g()) collect_reads(a.g(), read);
      for (const onnx::GraphProto& g : a.graphs()) collect_reads(g, read);
    }
  }
  for (const onnx::ValueInfoProto& out : graph.output()) read.insert(out.name());
}

// Removes the initializers for which `candidate(name)` holds that nothing reads any more: no node,
// no subgraph, no graph output (ONNX Runtime would name each in a warning at every load; their
// bytes stay in the data file).
template <typename Candidate>
void drop_unread_initializers(onnx::GraphProto& graph, const Candidate& candidate) {
  std::unordered_set<std::string> still_read;
  collect_reads(graph, still_read);
  for (const onnx::ValueInfoProto& in : graph.input()) still_read.insert(in.name());
  auto* initializers = graph.mutable_initializer();
  initializers->erase(std::remove_if(initializers->begin(), initializers->end(),
                                     [&](const onnx::TensorProto& t) { return candidate(t.name()) && !still_read.contains(t.name()); }),
                      initializers->end());
}

// The int64 values of initializer `name` (inline raw data), or none.
std::optional<std::vector<std::int64_t>> int64_initializer(const onnx::GraphProto& graph, const std::string& name) {
  for (const onnx::TensorProto& t : graph.initializer()) {
    if (t.name() != name) continue;
    if (t.data_type() != onnx::TensorProto::INT64 || t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL || t.raw_data().size() % 8 != 0) {
      return std::nullopt;
    }
    std::vector<std::int64_t> values(t.raw_data().size() / 8);
    std::memcpy(values.data(), t.raw_data().data(), t.raw_data().size());
    return values;
  }
  return std::nullopt;
}

void import_q3vl_domain(onnx::ModelProto& model) {
  for (const onnx::OperatorSetIdProto& opset : model.opset_import()) {
    if (opset.domain() == package::kQ3vlOpDomain) return;
  }
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain(package::kQ3vlOpDomain);
  opset->set_version(1);
}

// Who produces and who reads each value of a graph, for the fusions below.
struct GraphIndex {
  explicit GraphIndex(const onnx::GraphProto& g) : graph(g) {
    for (int i = 0; i < graph.node_size(); ++i) {
      for (const std::string& out : graph.node(i).output()) producer[out] = i;
      for (const std::string& in : graph.node(i).input()) ++readers[in];
    }
    for (const onnx::ValueInfoProto& out : graph.output()) readers[out.name()] += 2;  // a graph output is never folded away
    for (const onnx::TensorProto& t : graph.initializer()) initializers[t.name()] = &t;
  }
  // The initializer named `value`, or null.
  const onnx::TensorProto* initializer(const std::string& value) const {
    const auto found = initializers.find(value);
    return found == initializers.end() ? nullptr : found->second;
  }
  // The node of type `op` in `domain` that writes `value`, or null.
  const onnx::NodeProto* made_by(const std::string& value, const char* op, const std::string& domain) const {
    const auto found = producer.find(value);
    if (found == producer.end()) return nullptr;
    const onnx::NodeProto& node = graph.node(found->second);
    return node.op_type() == op && node.domain() == domain ? &node : nullptr;
  }
  std::int64_t read_by(const std::string& value) const {
    const auto found = readers.find(value);
    return found == readers.end() ? 0 : found->second;
  }
  bool read_once(const std::string& value) const { return read_by(value) == 1; }

  const onnx::GraphProto& graph;
  std::unordered_map<std::string, int> producer;
  std::unordered_map<std::string, std::int64_t> readers;
  std::unordered_map<std::string, const onnx::TensorProto*> initializers;
};

// D, when `split` is a vision block's Split(qkv, [D, D, D]) along axis 1 (equal thirds).
std::optional<std::int64_t> qkv_split_width(const onnx::GraphProto& graph, const onnx::NodeProto& split) {
  if (split.op_type() != "Split" || !split.domain().empty() || split.input_size() != 2 || split.output_size() != 3 ||
      int_attribute(split, "axis", 0) != 1) {
    return std::nullopt;
  }
  const auto sizes = int64_initializer(graph, split.input(1));
  if (!sizes || sizes->size() != 3 || (*sizes)[0] != (*sizes)[1] || (*sizes)[1] != (*sizes)[2]) return std::nullopt;
  return (*sizes)[0];
}

// Drops the nodes at `folded` (a node always has an op type: an empty one marks those to drop) and
// the initializers among `candidates` that nothing reads any more.
void drop_nodes(onnx::GraphProto& graph, const std::vector<int>& folded, const std::unordered_set<std::string>& candidates) {
  for (int i : folded) graph.mutable_node(i)->clear_op_type();
  auto* nodes = graph.mutable_node();
  nodes->erase(std::remove_if(nodes->begin(), nodes->end(), [](const onnx::NodeProto& n) { return n.op_type().empty(); }), nodes->end());
  drop_unread_initializers(graph, [&](const std::string& name) { return candidates.contains(name); });
}

// Folds each gated MLP's activation into its down projection: Split(gate_up, [I, I]) -> gate, up;
// Mul(Mul(gate, Sigmoid(gate)), up) -> Int4MatMul(K = I) becomes Int4MatMul(gate_up, swiglu = 1),
// where gate_up comes from an Int4MatMul of 2I rows and nothing else reads the values in between.
std::int64_t fuse_swiglu(onnx::GraphProto& graph) {
  const GraphIndex index(graph);
  const auto made_by = [&](const std::string& value, const char* op, const std::string& domain) { return index.made_by(value, op, domain); };
  const auto read_once = [&](const std::string& value) { return index.read_once(value); };
  std::vector<int> folded;  // nodes to drop
  std::unordered_set<std::string> split_sizes;
  std::int64_t fused = 0;
  for (onnx::NodeProto& down : *graph.mutable_node()) {
    if (down.op_type() != package::kInt4MatMulOp || down.domain() != package::kQ3vlOpDomain || attribute(down, "swiglu") != nullptr) continue;
    const std::int64_t I = int_attribute(down, "K", 0);
    const onnx::NodeProto* times_up = made_by(down.input(0), "Mul", "");
    if (times_up == nullptr || !read_once(down.input(0)) || times_up->input_size() != 2) continue;
    // Mul(activated gate, up) in either order; the activated gate is Mul(gate, Sigmoid(gate)).
    for (int side = 0; side < 2; ++side) {
      const std::string& activated = times_up->input(side);
      const std::string& up = times_up->input(1 - side);
      const onnx::NodeProto* gated = made_by(activated, "Mul", "");
      if (gated == nullptr || gated->input_size() != 2 || !read_once(activated)) continue;
      const int sigmoid_side = made_by(gated->input(1), "Sigmoid", "") != nullptr ? 1 : 0;
      const std::string& gate = gated->input(1 - sigmoid_side);
      const onnx::NodeProto* sigmoid = made_by(gated->input(sigmoid_side), "Sigmoid", "");
      const onnx::NodeProto* split = made_by(gate, "Split", "");
      if (sigmoid == nullptr || sigmoid->input(0) != gate || !read_once(gated->input(sigmoid_side)) || index.read_by(gate) != 2 || !read_once(up) ||
          split == nullptr || split->output_size() != 2 || split->output(0) != gate || split->output(1) != up ||
          int_attribute(*split, "axis", 0) != -1 || split->input_size() != 2 ||
          int64_initializer(graph, split->input(1)) != std::vector<std::int64_t>{I, I}) {
        continue;
      }
      const onnx::NodeProto* gate_up = made_by(split->input(0), package::kInt4MatMulOp, package::kQ3vlOpDomain);
      if (gate_up == nullptr || int_attribute(*gate_up, "N", 0) != 2 * I || !read_once(split->input(0))) continue;
      folded.insert(folded.end(), {index.producer.at(gate), index.producer.at(gated->input(sigmoid_side)), index.producer.at(activated),
                                   index.producer.at(down.input(0))});
      split_sizes.insert(split->input(1));
      down.set_input(0, split->input(0));
      add_int_attribute(down, "swiglu", 1);
      ++fused;
      break;
    }
  }
  drop_nodes(graph, folded, split_sizes);
  return fused;
}

// Folds each vision MLP's activation into its up projection: Int8MatMul (or Int4MatMul) ->
// FastGelu(x, bias) becomes the matmul with the bias as its input 3 and gelu = 1, where nothing else
// reads the product. ONNX Runtime's FastGelu with a bias allocates a scratch copy of its input,
// four times the hidden size per patch: the largest buffer of a big image's vision pass.
std::int64_t fuse_bias_gelu(onnx::GraphProto& graph) {
  const GraphIndex index(graph);
  // The op takes a float bias of one value per output; any other FastGelu bias stays where it is.
  const auto bias_fits = [&](const std::string& name, std::int64_t N) {
    const onnx::TensorProto* t = index.initializer(name);
    return t != nullptr && t->data_type() == onnx::TensorProto::FLOAT && t->dims_size() == 1 && t->dims(0) == N;
  };
  std::vector<int> folded;
  std::int64_t fused = 0;
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& gelu = graph.node(i);
    if (gelu.op_type() != "FastGelu" || gelu.domain() != graph::kMicrosoftDomain || gelu.input_size() != 2 || gelu.output_size() != 1) continue;
    const std::string& product = gelu.input(0);
    const auto found = index.producer.find(product);
    if (found == index.producer.end() || !index.read_once(product)) continue;
    onnx::NodeProto& matmul = *graph.mutable_node(found->second);
    const bool quant_matmul = matmul.op_type() == package::kInt8MatMulOp || matmul.op_type() == package::kInt4MatMulOp;
    if (!quant_matmul || matmul.domain() != package::kQ3vlOpDomain || matmul.input_size() != 3 || attribute(matmul, "swiglu") != nullptr ||
        attribute(matmul, "gelu") != nullptr || !bias_fits(gelu.input(1), int_attribute(matmul, "N", 0))) {
      continue;
    }
    matmul.add_input(gelu.input(1));
    matmul.set_output(0, gelu.output(0));
    add_int_attribute(matmul, "gelu", 1);
    folded.push_back(i);
    ++fused;
  }
  drop_nodes(graph, folded, {});
  return fused;
}

// Each Split(Add(Int8MatMul(x), bias), [D, D, D]) (a vision block's qkv projection) becomes three
// Int8MatMul nodes on rows 0, D and 2D of the same weights and bias (attribute first_row), each
// writing one D-wide output: no three-wide buffer, so every buffer of the vision pass is one width
// and ONNX Runtime's arena reuses them whole.
std::int64_t split_qkv_projections(onnx::GraphProto& graph) {
  const GraphIndex index(graph);
  std::unordered_map<int, std::vector<onnx::NodeProto>> replaced;
  std::unordered_set<int> dropped;
  for (int i = 0; i < graph.node_size(); ++i) {
    const onnx::NodeProto& split = graph.node(i);
    const std::optional<std::int64_t> width = qkv_split_width(graph, split);
    if (!width || !index.read_once(split.input(0))) continue;
    const onnx::NodeProto* add = index.made_by(split.input(0), "Add", "");
    if (add == nullptr || add->input_size() != 2 || !index.read_once(add->input(0))) continue;
    const std::int64_t D = *width;
    const onnx::TensorProto* bias = index.initializer(add->input(1));
    const onnx::NodeProto* matmul = index.made_by(add->input(0), package::kInt8MatMulOp, package::kQ3vlOpDomain);
    if (bias == nullptr || bias->data_type() != onnx::TensorProto::FLOAT || bias->dims_size() != 1 || bias->dims(0) != 3 * D ||
        matmul == nullptr || matmul->input_size() != 3 || int_attribute(*matmul, "N", 0) != 3 * D || attribute(*matmul, "gelu") != nullptr ||
        attribute(*matmul, "first_row") != nullptr) {
      continue;
    }
    std::vector<onnx::NodeProto> parts;
    for (int part = 0; part < 3; ++part) {
      onnx::NodeProto one;
      one.set_op_type(package::kInt8MatMulOp);
      one.set_domain(package::kQ3vlOpDomain);
      one.set_name(matmul->name() + "." + "qkv"[part]);
      for (const std::string& in : {matmul->input(0), matmul->input(1), matmul->input(2), add->input(1)}) one.add_input(in);
      one.add_output(split.output(part));
      copy_int_attributes(*matmul, one, {"K", "block_size"});
      add_int_attribute(one, "N", D);
      add_int_attribute(one, "first_row", part * D);
      parts.push_back(std::move(one));
    }
    replaced[i] = std::move(parts);
    dropped.insert(index.producer.at(split.input(0)));
    dropped.insert(index.producer.at(add->input(0)));
  }
  if (replaced.empty()) return 0;
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (int i = 0; i < graph.node_size(); ++i) {
    if (dropped.contains(i)) continue;
    const auto found = replaced.find(i);
    if (found == replaced.end()) {
      *nodes.Add() = graph.node(i);
    } else {
      for (onnx::NodeProto& part : found->second) *nodes.Add() = std::move(part);
    }
  }
  graph.mutable_node()->Swap(&nodes);
  return static_cast<std::int64_t>(replaced.size());
}

// Folds each vision MLP into one PatchMlp node (ort/patch_mlp_op.h): an Int8MatMul with the GELU
// and its bias folded in (fuse_bias_gelu), whose output only the down projection's Int8MatMul reads,
// and that one's bias Add where it has one. Inputs: x, up B, scales, bias, down B, scales, bias.
std::int64_t fuse_patch_mlp(onnx::GraphProto& graph) {
  const GraphIndex index(graph);
  const auto is_int8_matmul = [](const onnx::NodeProto& n) {
    return n.op_type() == package::kInt8MatMulOp && n.domain() == package::kQ3vlOpDomain && attribute(n, "swiglu") == nullptr;
  };
  std::vector<int> folded;
  std::int64_t fused = 0;
  for (int i = 0; i < graph.node_size(); ++i) {
    onnx::NodeProto& down = *graph.mutable_node(i);
    if (!is_int8_matmul(down) || attribute(down, "gelu") != nullptr || down.input_size() != 3 || !index.read_once(down.input(0))) continue;
    const auto up_at = index.producer.find(down.input(0));
    if (up_at == index.producer.end()) continue;
    const onnx::NodeProto& up = graph.node(up_at->second);
    const std::int64_t K = int_attribute(up, "K", 0), N = int_attribute(up, "N", 0), block = int_attribute(up, "block_size", 0);
    if (!is_int8_matmul(up) || int_attribute(up, "gelu", 0) != 1 || up.input_size() != 4 || int_attribute(down, "K", 0) != N ||
        int_attribute(down, "N", 0) != K || int_attribute(down, "block_size", 0) != block) {
      continue;
    }
    onnx::NodeProto mlp;
    mlp.set_op_type(package::kPatchMlpOp);
    mlp.set_domain(package::kQ3vlOpDomain);
    mlp.set_name(down.name() + ".patch_mlp");
    for (const std::string& in : {up.input(0), up.input(1), up.input(2), up.input(3), down.input(1), down.input(2)}) mlp.add_input(in);
    std::string output = down.output(0);
    // The down projection's bias, where an Add of a [K] float initializer is all that reads it.
    for (int j = 0; j < graph.node_size() && index.read_once(output); ++j) {
      const onnx::NodeProto& add = graph.node(j);
      if (add.op_type() != "Add" || !add.domain().empty() || add.input_size() != 2 || add.input(0) != output) continue;
      const onnx::TensorProto* bias = index.initializer(add.input(1));
      if (bias == nullptr || bias->data_type() != onnx::TensorProto::FLOAT || bias->dims_size() != 1 || bias->dims(0) != K) break;
      mlp.add_input(add.input(1));
      output = add.output(0);
      folded.push_back(j);
      break;
    }
    mlp.add_output(output);
    copy_int_attributes(up, mlp, {"K", "N", "block_size"});
    folded.push_back(up_at->second);
    down = std::move(mlp);
    ++fused;
  }
  drop_nodes(graph, folded, {});
  return fused;
}

// One head-normed, rotated projection feeding attention: Split output -> Reshape [0, 0, heads, D]
// -> SimplifiedLayerNormalization (over D) -> Reshape [0, 0, -1] -> RotaryEmbedding (rotate-half,
// all of D). What it found, or nothing when the chain is not exactly the exporter's.
struct NormedRotation {
  std::string split_output, norm_weight, rows, cos, sin;
  float epsilon = 0.0f;
  std::vector<int> nodes;
  std::vector<std::string> shapes;  // the two Reshape shapes
};

std::optional<NormedRotation> normed_rotation(const GraphIndex& index, const std::string& value, std::int64_t heads, std::int64_t D) {
  const onnx::NodeProto* rotary = index.made_by(value, "RotaryEmbedding", graph::kMicrosoftDomain);
  if (rotary == nullptr || !index.read_once(value) || rotary->input_size() != 4 || int_attribute(*rotary, "interleaved", 0) != 0 ||
      int_attribute(*rotary, "num_heads", 0) != heads || int_attribute(*rotary, "rotary_embedding_dim", 0) != 0 ||
      int_attribute(*rotary, "is_packed_batching", 0) != 0 || attribute(*rotary, "scale") != nullptr) {
    return std::nullopt;
  }
  const onnx::NodeProto* flatten = index.made_by(rotary->input(0), "Reshape", "");
  if (flatten == nullptr || !index.read_once(rotary->input(0)) || int64_initializer(index.graph, flatten->input(1)) != std::vector<std::int64_t>{0, 0, -1}) {
    return std::nullopt;
  }
  const onnx::NodeProto* norm = index.made_by(flatten->input(0), "SimplifiedLayerNormalization", "");
  if (norm == nullptr || !index.read_once(flatten->input(0)) || norm->input_size() != 2 || norm->output_size() != 1 ||
      int_attribute(*norm, "axis", -1) != -1 || int_attribute(*norm, "stash_type", 1) != 1) {
    return std::nullopt;
  }
  const onnx::NodeProto* heads_view = index.made_by(norm->input(0), "Reshape", "");
  if (heads_view == nullptr || !index.read_once(norm->input(0)) ||
      int64_initializer(index.graph, heads_view->input(1)) != std::vector<std::int64_t>{0, 0, heads, D} || !index.read_once(heads_view->input(0))) {
    return std::nullopt;
  }
  const onnx::AttributeProto* epsilon = attribute(*norm, "epsilon");
  NormedRotation found{heads_view->input(0), norm->input(1), rotary->input(1), rotary->input(2), rotary->input(3),
                       epsilon != nullptr ? epsilon->f() : 1e-5f, {}, {heads_view->input(1), flatten->input(1)}};
  found.nodes = {index.producer.at(value), index.producer.at(rotary->input(0)), index.producer.at(flatten->input(0)),
                 index.producer.at(norm->input(0))};
  return found;
}

// Folds each q3vl GroupQueryAttention's preamble into it: Split(qkv, [H D, Hkv D, Hkv D]), the
// query and key heads' RMS norms and rotations (normed_rotation) become inputs of one
// QkvAttention node (ort/attention_op.h): qkv, the two norm weights, the rotary rows, cos and sin,
// then the cache inputs. Ten nodes a layer become one.
std::int64_t fuse_qkv_attention(onnx::GraphProto& graph) {
  const GraphIndex index(graph);
  std::vector<int> folded;
  std::unordered_set<std::string> shapes;
  std::int64_t fused = 0;
  for (onnx::NodeProto& node : *graph.mutable_node()) {
    if (node.op_type() != package::kGroupQueryAttentionOp || node.domain() != package::kQ3vlOpDomain) continue;
    const std::int64_t heads = int_attribute(node, "num_heads", 0), kv_heads = int_attribute(node, "kv_num_heads", 0);
    const onnx::NodeProto* split = index.made_by(node.input(2), "Split", "");
    if (split == nullptr || heads <= 0 || kv_heads <= 0 || split->output_size() != 3 || split->input_size() != 2 ||
        int_attribute(*split, "axis", 0) != -1 || split->output(2) != node.input(2) || !index.read_once(node.input(2))) {
      continue;
    }
    const std::optional<std::vector<std::int64_t>> sizes = int64_initializer(graph, split->input(1));
    if (!sizes || sizes->size() != 3 || (*sizes)[0] % heads != 0) continue;
    const std::int64_t D = (*sizes)[0] / heads;
    if (*sizes != std::vector<std::int64_t>{heads * D, kv_heads * D, kv_heads * D} || D % 2 != 0) continue;
    const std::optional<NormedRotation> q = normed_rotation(index, node.input(0), heads, D);
    const std::optional<NormedRotation> k = normed_rotation(index, node.input(1), kv_heads, D);
    if (!q || !k || q->split_output != split->output(0) || k->split_output != split->output(1) || q->rows != k->rows || q->cos != k->cos ||
        q->sin != k->sin || q->epsilon != k->epsilon) {
      continue;
    }
    folded.insert(folded.end(), q->nodes.begin(), q->nodes.end());
    folded.insert(folded.end(), k->nodes.begin(), k->nodes.end());
    folded.push_back(index.producer.at(node.input(2)));
    shapes.insert(split->input(1));
    shapes.insert(q->shapes.begin(), q->shapes.end());
    shapes.insert(k->shapes.begin(), k->shapes.end());
    onnx::NodeProto replacement;
    replacement.set_name(node.name() + ".qkv");
    replacement.set_op_type(package::kQkvAttentionOp);
    replacement.set_domain(package::kQ3vlOpDomain);
    for (const std::string& input : {split->input(0), q->norm_weight, k->norm_weight, q->rows, q->cos, q->sin}) replacement.add_input(input);
    for (int i = 3; i < 7; ++i) replacement.add_input(node.input(i));
    *replacement.mutable_output() = node.output();
    *replacement.mutable_attribute() = node.attribute();
    onnx::AttributeProto* epsilon = replacement.add_attribute();
    epsilon->set_name("epsilon");
    epsilon->set_type(onnx::AttributeProto::FLOAT);
    epsilon->set_f(q->epsilon);
    node = std::move(replacement);
    ++fused;
  }
  drop_nodes(graph, folded, shapes);
  return fused;
}

// Where every attention node is a QkvAttention whose caches are graph inputs and outputs read by
// nothing else (Shape aside; Identity nodes naming the outputs), the caches become IEEE half floats (QkvAttentionHalfCache): a decode
// step reads half the cache's bytes, and a sequence holds twice the context in the same memory.
// Not elsewhere: the runtime binds one cache type for every layer. Returns how many nodes changed.
std::int64_t use_half_caches(onnx::GraphProto& graph) {
  std::unordered_map<std::string, std::vector<const onnx::NodeProto*>> readers;
  for (const onnx::NodeProto& node : graph.node()) {
    for (const std::string& input : node.input()) readers[input].push_back(&node);
  }
  std::unordered_map<std::string, onnx::ValueInfoProto*> inputs, outputs;
  for (onnx::ValueInfoProto& v : *graph.mutable_input()) inputs[v.name()] = &v;
  for (onnx::ValueInfoProto& v : *graph.mutable_output()) outputs[v.name()] = &v;
  std::vector<onnx::NodeProto*> attention;
  for (onnx::NodeProto& node : *graph.mutable_node()) {
    if (node.op_type() == "GroupQueryAttention" || node.op_type() == package::kGroupQueryAttentionOp) return 0;
    if (node.op_type() == package::kQkvAttentionOp && node.domain() == package::kQ3vlOpDomain) attention.push_back(&node);
  }
  const auto float_tensor = [](const std::unordered_map<std::string, onnx::ValueInfoProto*>& values, const std::string& name) {
    const auto found = values.find(name);
    return found != values.end() && found->second->type().tensor_type().elem_type() == onnx::TensorProto::FLOAT;
  };
  std::vector<std::string> retyped;  // the present caches and the graph outputs that name them
  for (const onnx::NodeProto* node : attention) {
    if (node->input_size() != 10 || node->output_size() != 3) return 0;
    for (int i : {6, 7}) {
      if (!float_tensor(inputs, node->input(i))) return 0;
      for (const onnx::NodeProto* reader : readers[node->input(i)]) {
        if (reader != node && reader->op_type() != "Shape") return 0;
      }
    }
    // A present cache is a graph output, or read only by Identity nodes that name graph outputs.
    for (int o : {1, 2}) {
      const std::string& present = node->output(o);
      if (outputs.contains(present)) {
        if (!float_tensor(outputs, present) || !readers[present].empty()) return 0;
        retyped.push_back(present);
        continue;
      }
      if (readers[present].empty()) return 0;
      for (const onnx::NodeProto* reader : readers[present]) {
        if (reader->op_type() != "Identity" || !float_tensor(outputs, reader->output(0)) || !readers[reader->output(0)].empty()) return 0;
        retyped.push_back(reader->output(0));
      }
      retyped.push_back(present);
    }
  }
  const auto to_half = [](onnx::ValueInfoProto* v) { v->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT16); };
  for (onnx::NodeProto* node : attention) {
    node->set_op_type(package::kQkvAttentionHalfCacheOp);
    for (int i : {6, 7}) to_half(inputs.at(node->input(i)));
  }
  std::unordered_set<std::string> retyped_names(retyped.begin(), retyped.end());
  for (const std::string& name : retyped) {
    if (outputs.contains(name)) to_half(outputs.at(name));
  }
  for (onnx::ValueInfoProto& v : *graph.mutable_value_info()) {  // shape annotations of the tensors in between
    if (retyped_names.contains(v.name())) to_half(&v);
  }
  return static_cast<std::int64_t>(attention.size());
}

}  // namespace

std::int64_t use_half_scales(onnx::ModelProto& model, const std::filesystem::path& dir, graph::ExternalDataWriter& out) {
  onnx::GraphProto& graph = *model.mutable_graph();
  std::unordered_map<std::string, int> initializer_index;
  for (int i = 0; i < graph.initializer_size(); ++i) initializer_index[graph.initializer(i).name()] = i;
  std::unordered_map<std::string, std::string> halved;  // float32 scales -> their float16 copy
  std::vector<onnx::TensorProto> copies;
  for (onnx::NodeProto& node : *graph.mutable_node()) {
    // Int8MatMul reads float scales only (and is compute bound: bytes read matter less).
    if (node.domain() != package::kQ3vlOpDomain || node.op_type() == package::kInt8MatMulOp) continue;
    const std::vector<int> scale_inputs = node.op_type() == package::kInt4MatMulOp ? std::vector<int>{2} : std::vector<int>{3, 5};
    for (int input : scale_inputs) {
      const std::string name = node.input(input);
      const auto found = initializer_index.find(name);
      if (found == initializer_index.end() || graph.initializer(found->second).data_type() != onnx::TensorProto::FLOAT) continue;
      if (!halved.contains(name)) {
        const onnx::TensorProto& scales = graph.initializer(found->second);
        const std::vector<float> values = float_values(scales, dir);
        std::vector<std::uint16_t> halves(values.size());
        for (std::size_t i = 0; i < values.size(); ++i) halves[i] = float_to_fp16(values[i]);
        onnx::TensorProto copy;
        copy.set_name(name + ".f16");
        copy.set_data_type(onnx::TensorProto::FLOAT16);
        *copy.mutable_dims() = scales.dims();
        graph::point_to_external(copy, out, out.append({reinterpret_cast<const std::uint8_t*>(halves.data()), halves.size() * 2}));
        copies.push_back(std::move(copy));
        halved[name] = name + ".f16";
      }
      node.set_input(input, halved[name]);
    }
  }
  // The float32 scales nothing reads any more leave this graph (text.onnx keeps them).
  drop_unread_initializers(graph, [&](const std::string& name) { return halved.contains(name); });
  for (onnx::TensorProto& copy : copies) *graph.add_initializer() = std::move(copy);
  return static_cast<std::int64_t>(copies.size());
}


// Drops the nodes of `graph` nothing reads any more (directly or from a subgraph), until none is left.
void drop_dead_nodes(onnx::GraphProto& graph) {
  for (bool dropped = true; dropped;) {
    std::unordered_set<std::string> read;
    collect_reads(graph, read);
    auto* nodes = graph.mutable_node();
    const auto dead = [&](const onnx::NodeProto& node) {
      return std::none_of(node.output().begin(), node.output().end(), [&](const std::string& out) { return !out.empty() && read.contains(out); });
    };
    const auto first_dead = std::remove_if(nodes->begin(), nodes->end(), dead);
    dropped = first_dead != nodes->end();
    nodes->erase(first_dead, nodes->end());
  }
}

const onnx::GraphProto* graph_attribute(const onnx::NodeProto& node, const char* name) {
  const onnx::AttributeProto* a = attribute(node, name);
  return a != nullptr && a->has_g() ? &a->g() : nullptr;
}

// The data inputs of `graph`'s Gather nodes that come from the enclosing graph (none of its nodes
// writes them, nor is one its input), in node order.
std::vector<std::string> outer_gathers(const onnx::GraphProto& graph) {
  std::unordered_set<std::string> own;
  for (const onnx::ValueInfoProto& in : graph.input()) own.insert(in.name());
  for (const onnx::NodeProto& node : graph.node()) own.insert(node.output().begin(), node.output().end());
  std::vector<std::string> outer;
  for (const onnx::NodeProto& node : graph.node()) {
    if (node.op_type() == "Gather" && node.input_size() == 2 && !own.contains(node.input(0))) outer.push_back(node.input(0));
  }
  return outer;
}

// What a node of `graph` of type `op` (default domain) reshapes: its input 0, when `value` is
// such a node's output; "" otherwise.
std::string reshaped(const onnx::GraphProto& graph, const std::string& value) {
  for (const onnx::NodeProto& node : graph.node()) {
    if (node.output_size() == 1 && node.output(0) == value) return node.op_type() == "Reshape" && node.domain().empty() ? node.input(0) : "";
  }
  return "";
}

const onnx::NodeProto* only_node(const onnx::GraphProto& graph, const char* op, const std::string& domain) {
  const onnx::NodeProto* found = nullptr;
  for (const onnx::NodeProto& node : graph.node()) {
    if (node.op_type() == op && node.domain() == domain) {
      if (found != nullptr) return nullptr;
      found = &node;
    }
  }
  return found;
}

// The rotation the vision exporter puts on a query or key (export/vision_blocks.cpp): Reshape
// [-1, D] <- Add(Mul(x, cos), Mul(Concat(Neg(x2), x1), sin)), x = Reshape(`split_output`, [-1,
// heads, hd]). Its cos and sin, or nothing when `value` is not made that way.
std::optional<std::pair<std::string, std::string>> patch_rotation(const GraphIndex& index, const std::string& value, const std::string& split_output) {
  const onnx::NodeProto* rows = index.made_by(value, "Reshape", "");
  const onnx::NodeProto* add = rows != nullptr ? index.made_by(rows->input(0), "Add", "") : nullptr;
  if (add == nullptr || add->input_size() != 2) return std::nullopt;
  const onnx::NodeProto* straight = index.made_by(add->input(0), "Mul", "");
  const onnx::NodeProto* turned = index.made_by(add->input(1), "Mul", "");
  if (straight == nullptr || turned == nullptr) return std::nullopt;
  const onnx::NodeProto* heads = index.made_by(straight->input(0), "Reshape", "");
  const onnx::NodeProto* halves = index.made_by(turned->input(0), "Concat", "");
  if (heads == nullptr || heads->input(0) != split_output || halves == nullptr || halves->input_size() != 2) return std::nullopt;
  const onnx::NodeProto* negated = index.made_by(halves->input(0), "Neg", "");
  const onnx::NodeProto* split = index.made_by(halves->input(1), "Split", "");
  if (negated == nullptr || split == nullptr || split->input(0) != heads->output(0) || negated->input(0) != split->output(1) ||
      halves->input(1) != split->output(0)) {
    return std::nullopt;
  }
  return std::make_pair(straight->input(1), turned->input(1));
}

// Folds each vision block's attention into one PatchAttention node (ort/patch_attention_op.h): the
// query and key rotations (patch_rotation) of Split(qkv, [D, D, D]) and the If over one item or
// many (a MultiHeadAttention on views, or a Loop slicing each item out) become PatchAttention(q, k,
// v, cos, sin, item starts, ends, slices) on the Split's outputs. What the fold leaves unread is
// dropped.
std::int64_t fuse_patch_attention(onnx::GraphProto& graph) {
  std::int64_t fused = 0;
  {
    const GraphIndex index(graph);
    for (onnx::NodeProto& node : *graph.mutable_node()) {
      if (node.op_type() != "If" || !node.domain().empty() || node.output_size() != 1) continue;
      const onnx::GraphProto* one = graph_attribute(node, "then_branch");
      const onnx::GraphProto* many = graph_attribute(node, "else_branch");
      if (one == nullptr || many == nullptr) continue;
      // then: one MultiHeadAttention on reshaped q, k, v; the reshape's batch from Gather(frames).
      const onnx::NodeProto* mha = only_node(*one, "MultiHeadAttention", graph::kMicrosoftDomain);
      const std::vector<std::string> one_gathers = outer_gathers(*one);
      if (mha == nullptr || mha->input_size() != 3 || one_gathers.size() != 1) continue;
      const onnx::AttributeProto* scale = attribute(*mha, "scale");
      const std::int64_t heads = int_attribute(*mha, "num_heads", 0);
      const std::string q = reshaped(*one, mha->input(0));
      const std::string k = reshaped(*one, mha->input(1));
      const std::string v = reshaped(*one, mha->input(2));
      // else: a Loop whose body gathers each item's start, end and frames, in that order.
      const onnx::NodeProto* loop = only_node(*many, "Loop", "");
      const onnx::GraphProto* body = loop != nullptr ? graph_attribute(*loop, "body") : nullptr;
      const std::vector<std::string> items = body != nullptr ? outer_gathers(*body) : std::vector<std::string>{};
      if (scale == nullptr || heads <= 0 || q.empty() || k.empty() || v.empty() || items.size() != 3 || items[2] != one_gathers[0]) continue;
      const onnx::NodeProto* split = index.made_by(v, "Split", "");
      const std::optional<std::int64_t> width = split != nullptr ? qkv_split_width(graph, *split) : std::nullopt;
      if (!width || split->output(2) != v || *width % heads != 0) continue;
      const auto q_tables = patch_rotation(index, q, split->output(0));
      const auto k_tables = patch_rotation(index, k, split->output(1));
      if (!q_tables || !k_tables || q_tables != k_tables) continue;

      onnx::NodeProto attention;
      attention.set_op_type(package::kPatchAttentionOp);
      attention.set_domain(package::kQ3vlOpDomain);
      attention.set_name(node.name() + ".patch_attention");
      for (const std::string& in : {split->output(0), split->output(1), split->output(2), q_tables->first, q_tables->second, items[0], items[1], items[2]}) {
        attention.add_input(in);
      }
      attention.add_output(node.output(0));
      add_int_attribute(attention, "num_heads", heads);
      *attention.add_attribute() = *scale;
      node = std::move(attention);
      ++fused;
    }
  }
  if (fused > 0) drop_dead_nodes(graph);
  return fused;
}

KernelRewrite use_q3vl_attention(onnx::ModelProto& model) {
  KernelRewrite done;
  std::unordered_map<std::string, int> graph_input_types;
  for (const onnx::ValueInfoProto& v : model.graph().input()) graph_input_types[v.name()] = v.type().tensor_type().elem_type();
  for (onnx::NodeProto& node : *model.mutable_graph()->mutable_node()) {
    if (!replaceable_attention(node, graph_input_types)) continue;
    node.set_name(node.name() + ".q3vl_attention");
    node.set_domain(package::kQ3vlOpDomain);
    if (attribute(node, "scale") == nullptr) {  // GroupQueryAttention's default: 1/sqrt(head size), which 0 asks for
      onnx::AttributeProto* scale = node.add_attribute();
      scale->set_name("scale");
      scale->set_type(onnx::AttributeProto::FLOAT);
      scale->set_f(0.0f);
    }
    ++done.attention;
  }
  done.qkv_attention = fuse_qkv_attention(*model.mutable_graph());
  done.half_caches = use_half_caches(*model.mutable_graph());
  if (done.attention > 0) import_q3vl_domain(model);
  return done;
}

KernelRewrite use_q3vl_kernels(onnx::ModelProto& model, KernelWidths widths) {
  std::unordered_map<std::string, int> initializer_types;
  for (const onnx::TensorProto& t : model.graph().initializer()) initializer_types[t.name()] = t.data_type();
  KernelRewrite done;
  for (onnx::NodeProto& node : *model.mutable_graph()->mutable_node()) {
    if (widths.int4 && replaceable_experts(node)) {
      onnx::NodeProto experts = q3vl_node(node, package::kInt4ExpertsOp, ".int4_experts", {0, 1, 2, 3, 5, 6});
      copy_int_attributes(node, experts, {"k", "normalize_routing_weights", "block_size"});
      node = std::move(experts);
      ++done.experts;
    } else if (replaceable_matmul(node, initializer_types, widths)) {
      const bool int8 = int_attribute(node, "bits", 4) == 8;
      onnx::NodeProto matmul = q3vl_node(node, int8 ? package::kInt8MatMulOp : package::kInt4MatMulOp, int8 ? ".int8_matmul" : ".int4_matmul", {0, 1, 2});
      copy_int_attributes(node, matmul, {"K", "N", "block_size"});
      node = std::move(matmul);
      ++done.matmuls;
    }
  }
  if (done.matmuls > 0) {
    done.swiglu = fuse_swiglu(*model.mutable_graph());
    done.gelu = fuse_bias_gelu(*model.mutable_graph());
    done.patch_attention = fuse_patch_attention(*model.mutable_graph());
    if (done.patch_attention > 0) done.qkv_splits = split_qkv_projections(*model.mutable_graph());
    done.patch_mlp = fuse_patch_mlp(*model.mutable_graph());
  }
  // Attention too, where weights went to the kernels (a float decoder keeps ONNX Runtime's graph).
  if (done.total() > 0) {
    const KernelRewrite attention = use_q3vl_attention(model);
    done.attention = attention.attention;
    done.qkv_attention = attention.qkv_attention;
    done.half_caches = attention.half_caches;
  }
  if (done.total() > 0) {
    import_q3vl_domain(model);
    drop_unread_initializers(*model.mutable_graph(), [](const std::string&) { return true; });
  }
  return done;
}

}  // namespace q3vl
