#include "export/moe_mlp.h"

#include <numeric>
#include <vector>

#include "model/tensor_names.h"
#include "q3vl/error.h"

namespace q3vl::decoder {

std::string router_logits_output(std::int64_t layer) { return "router_logits." + std::to_string(layer); }

MoeMlp::MoeMlp(graph::GraphBuilder& g, const TextConfig& t, bool router_outputs)
    : router_rows_shape_(g.constant_i64({-1, t.moe ? t.moe->experts : 0})), router_outputs_(router_outputs) {}

std::string MoeMlp::operator()(const LayerContext& layer, const std::string& normed) const {
  return layer.config.sparse_layer(layer.layer) ? sparse(layer, normed) : swiglu_mlp(layer, normed);
}

std::string MoeMlp::sparse(const LayerContext& layer, const std::string& normed) const {
  graph::GraphBuilder& g = layer.g;
  const MoeConfig& m = *layer.config.moe;
  const std::int64_t H = layer.config.hidden_size;
  const std::int64_t I = m.intermediate_size;
  // The router stays float whatever the projections' format: which experts run hangs on it.
  const std::string logits = g.op("Reshape", {layer.weights.linear(normed, layer.weight(names::kRouterLeaf), "", LinearOptions{},
                                                                    layer.hint("router")),
                                              router_rows_shape_});
  if (router_outputs_) {
    g.output(g.convert(logits, layer.weights.float_type(), graph::kFloat), router_logits_output(layer.layer), graph::kFloat,
             {std::string("router_rows"), m.experts});
  }
  // fc1 [E, 2I, H] with gate and up rows interleaved (gate_0, up_0, gate_1, ...): the only fused
  // SwiGLU layout the CPU kernel takes (swiglu_fusion = 1). HF's gate_up holds gate rows 0..I-1, then up.
  std::vector<std::int64_t> interleaved(static_cast<std::size_t>(2 * I));
  for (std::int64_t i = 0; i < I; ++i) {
    interleaved[static_cast<std::size_t>(2 * i)] = i;
    interleaved[static_cast<std::size_t>(2 * i + 1)] = I + i;
  }
  std::vector<std::int64_t> in_order(static_cast<std::size_t>(H));
  std::iota(in_order.begin(), in_order.end(), std::int64_t{0});
  const WeightWriter::ExpertStack fc1 =
      layer.weights.expert_matrices(layer.weight(names::kExpertsGateUpLeaf), m.experts, 2 * I, H, interleaved, layer.linear,
                                    layer.weight(names::kExpertsGateUpLeaf) + ".interleaved");
  const WeightWriter::ExpertStack fc2 = layer.weights.expert_matrices(
      layer.weight(names::kExpertsDownLeaf), m.experts, H, I, in_order, layer.linear, layer.weight(names::kExpertsDownLeaf) + ".out_in");
  // Defaults left as they are: activation_alpha 1, activation_beta 0, swiglu_limit +inf give
  // silu(gate) * up exactly.
  std::vector<graph::Attribute> attributes = {{"k", m.experts_per_token},
                                              {"activation_type", std::string("swiglu")},
                                              {"swiglu_fusion", std::int64_t{1}},
                                              {"normalize_routing_weights", std::int64_t{m.norm_topk_prob ? 1 : 0}}};
  if (fc1.bits == 0) {
    return g.op("MoE", {normed, logits, fc1.weights, "", fc2.weights}, attributes, graph::kMicrosoftDomain, layer.hint("moe"));
  }
  // QMoE: the same routing and activation over block-quantized experts (symmetric: no zero points).
  attributes.push_back({"expert_weight_bits", fc1.bits});
  attributes.push_back({"block_size", fc1.block_size});
  return g.op("QMoE", {normed, logits, fc1.weights, fc1.scales, "", fc2.weights, fc2.scales}, attributes,
              graph::kMicrosoftDomain, layer.hint("qmoe"));
}

}  // namespace q3vl::decoder
