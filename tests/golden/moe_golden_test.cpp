// Qwen3-VL MoE against Hugging Face (tests/fixtures/golden/moe, made by tools/golden/gen_moe_fixtures.py
// with transformers): fp32 packages exported from both expert layouts (save_pretrained's and the
// released checkpoints'), compared on every case for prefill logits, per-layer outputs, each
// sparse layer's router logits and top-k choice, and 32 greedy tokens through the KV cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <numeric>

#include "engine/sampler.h"
#include "engine/text_models.h"
#include "engine/vision_encoder.h"
#include "export/moe_mlp.h"
#include "export/package_writer.h"
#include "export/text_export.h"
#include "export/vision_export.h"
#include "model/checkpoint.h"
#include "model/expert_layout.h"
#include "model/random_checkpoint.h"
#include "model/tensor_names.h"
#include "ort/onnx_session.h"
#include "package/kernel_graphs.h"
#include "package/format.h"
#include "q3vl/error.h"
#include "q3vl/conversation.h"
#include "q3vl/model.h"
#include "support/golden.h"
#include "support/test_support.h"
#include "util/files.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const json& manifest() { return test::moe_golden_manifest(); }

fs::path model_dir(const std::string& model) {
  return test::moe_golden_dir() / manifest()["models"][model]["dir"].get<std::string>();
}

// A reduced-precision decoder: fp16 compute, or int8/int4 projections and experts.
struct Precision {
  std::string tag = "fp32";
  bool fp16 = false;
  WeightFormat format = WeightFormat::F32;
  // The decoder to run: text.onnx (ONNX Runtime's MoE/QMoE) or text.kernels.onnx (q3vl's kernels).
  std::string text_model = package::kTextModel;
};

// embedding.onnx + text.onnx with per-layer and router-logit outputs, once per model and precision.
fs::path package_of(const std::string& model, const Precision& precision = {}) {
  static test::TempDir root;
  const fs::path dir = root / (model + "-" + precision.tag);
  if (!fs::exists(dir / package::kTextModel)) {
    fs::create_directories(dir);
    const Checkpoint ckpt = Checkpoint::open(model_dir(model));
    TextExportOptions options;
    options.fp16 = precision.fp16;
    options.linear.format = precision.format;
    options.linear.block_size = 16;  // the fixture's widths are 24..96
    options.hidden_state_outputs = true;
    options.router_logit_outputs = true;
    export_embedding(ckpt, dir);
    export_text(ckpt, options, dir);
  }
  return dir;
}

VisualFeatures hf_visual_features(const test::GoldenCase& c, const ModelConfig& config) {
  if (!c.has("pixel_values")) return {};
  return join_visual_features(c.load("image_features").as_float(), c.load("deepstack_features").as_float(),
                              config.text.hidden_size);
}

// The case's prompt embedded by the package (HF's visual features scattered in).
std::vector<float> prompt_embeddings(OnnxEnvironment& env, const test::GoldenCase& c, const fs::path& package,
                                     const ModelConfig& config) {
  const EmbeddingModel embedding(env, package / package::kEmbeddingModel, config);
  const VisualFeatures features = hf_visual_features(c, config);
  return embedding.embed(c.load("input_ids").as_int64(), c.has("pixel_values") ? &features : nullptr);
}

struct GreedyRun {
  DecoderOutput prefill;
  std::vector<std::int64_t> tokens;
  std::vector<std::vector<float>> step_logits;
};

// Greedy decoding; with `forced`, those tokens are fed instead of our own argmax (teacher forcing,
// so a reduced-precision decoder is compared with HF step by step on HF's path).
GreedyRun run_greedy(const test::GoldenCase& c, const fs::path& package, int steps,
                     const std::vector<std::int64_t>* forced = nullptr, const std::string& text_model = package::kTextModel) {
  const ModelConfig config = c.config();
  OnnxEnvironment env;
  const EmbeddingModel embedding(env, package / package::kEmbeddingModel, config);
  const DecoderModel decoder(env, package / text_model, config);
  KvCache cache = decoder.new_cache();
  const std::int64_t delta = c.load("rope_deltas").as_int64()[0];
  GreedyRun run;
  run.prefill = decoder.forward(cache, prompt_embeddings(env, c, package, config), c.load("position_ids").as_int64());
  std::vector<float> logits(run.prefill.logits.end() - config.text.vocab_size, run.prefill.logits.end());
  for (int step = 0; step < steps; ++step) {
    run.step_logits.push_back(logits);
    run.tokens.push_back(argmax(logits));
    if (step + 1 == steps) break;
    const std::int64_t position = cache.cached_tokens() + delta;
    const std::vector<std::int64_t> next = {forced != nullptr ? (*forced)[static_cast<std::size_t>(step)] : run.tokens.back()};
    logits = decoder.forward(cache, embedding.embed(next, nullptr), std::vector<std::int64_t>{position, position, position}).logits;
  }
  return run;
}

// Each sparse layer's router logits [S, E] for the case's prefill, straight from the session
// (the runtime never asks for them).
std::vector<std::vector<float>> prefill_router_logits(const test::GoldenCase& c, const fs::path& package,
                                                      const std::vector<std::int64_t>& sparse_layers,
                                                      const std::string& text_model = package::kTextModel) {
  const ModelConfig config = c.config();
  const TextConfig& t = config.text;
  OnnxEnvironment env;
  std::vector<float> embeds = prompt_embeddings(env, c, package, config);
  std::vector<std::int64_t> mask = c.load("attention_mask").as_int64();
  std::vector<std::int64_t> positions = c.load("position_ids").as_int64();
  const std::int64_t S = static_cast<std::int64_t>(mask.size());
  const OnnxSession session(env, package / text_model);
  std::vector<std::string> names = {package::kInputsEmbeds, package::kAttentionMask, package::kPositionIds};
  std::vector<Ort::Value> inputs;
  inputs.push_back(tensor_view(embeds, {1, S, static_cast<std::int64_t>(embeds.size()) / S}));
  inputs.push_back(tensor_view(mask, {1, S}));
  inputs.push_back(tensor_view(positions, {3, 1, S}));
  // No cached tokens: [1, kv_heads, 0, head_dim], of the session's cache type (text.kernels.onnx's
  // is float16).
  std::vector<float> empty_past;
  std::uint16_t no_halves = 0;
  const std::vector<std::string> session_inputs = session.input_names();
  bool half_cache = false;
  for (std::size_t i = 0; i < session_inputs.size(); ++i) {
    if (session_inputs[i] == package::past_key(0)) {
      half_cache = session.session().GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    }
  }
  const std::vector<std::int64_t> empty_shape{1, t.num_key_value_heads, 0, t.head_dim};
  const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  for (std::int64_t l = 0; l < t.num_hidden_layers; ++l) {
    for (const std::string& name : {package::past_key(l), package::past_value(l)}) {
      names.push_back(name);
      inputs.push_back(half_cache ? Ort::Value::CreateTensor(cpu, &no_halves, 0, empty_shape.data(), empty_shape.size(), ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16)
                                  : tensor_view(empty_past, empty_shape));
    }
  }
  std::vector<std::string> outputs;
  for (std::int64_t l : sparse_layers) outputs.push_back(decoder::router_logits_output(l));
  std::vector<std::vector<float>> out;
  for (const Ort::Value& value : session.run(names, inputs, outputs)) {
    const float* data = value.GetTensorData<float>();
    out.emplace_back(data, data + S * t.moe->experts);
  }
  return out;
}

// HF's router on one token's logits: softmax, the k largest (lower index first on a tie, as
// torch.topk), renormalised to sum to 1.
struct Routing {
  std::vector<std::int64_t> experts;
  std::vector<float> weights;
  double margin = 0;  // probability of the k-th choice minus the (k+1)-th
};
Routing route(std::span<const float> logits, std::int64_t k) {
  const float top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0;
  for (std::size_t e = 0; e < logits.size(); ++e) sum += p[e] = std::exp(static_cast<double>(logits[e] - top));
  for (double& v : p) v /= sum;
  std::vector<std::int64_t> order(logits.size());
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return p[a] > p[b]; });
  Routing r;
  double chosen = 0;
  for (std::int64_t j = 0; j < k; ++j) chosen += p[order[j]];
  for (std::int64_t j = 0; j < k; ++j) {
    r.experts.push_back(order[j]);
    r.weights.push_back(static_cast<float>(p[order[j]] / chosen));
  }
  r.margin = static_cast<std::size_t>(k) < p.size() ? p[order[k - 1]] - p[order[k]] : 1.0;
  return r;
}

std::vector<std::int64_t> sparse_layers_of(const TextConfig& t) {
  std::vector<std::int64_t> layers;
  for (std::int64_t l = 0; l < t.num_hidden_layers; ++l) {
    if (t.sparse_layer(l)) layers.push_back(l);
  }
  return layers;
}

TEST(MoeGolden, ConfigsParseWithTheSparseLayersHfReports) {
  ASSERT_GE(test::moe_golden_cases().size(), 2u);
  for (const test::GoldenCase& c : test::moe_golden_cases()) {
    SCOPED_TRACE(c.name);
    const ModelConfig config = c.config();
    ASSERT_TRUE(config.text.moe.has_value());
    EXPECT_EQ(sparse_layers_of(config.text), c.entry["routing"]["sparse_layers"].get<std::vector<std::int64_t>>());
    EXPECT_EQ(config.text.moe->experts_per_token, c.entry["routing"]["top_k"].get<std::int64_t>());
    // The written-back config reads the same (the package manifest carries it).
    EXPECT_EQ(to_config_json(parse_model_config(to_config_json(config), "round trip")), to_config_json(config));
  }
}

TEST(MoeGolden, BothExpertLayoutsOpenAndAreRecognised) {
  int models = 0;
  for (const auto& [name, entry] : manifest()["models"].items()) {
    SCOPED_TRACE(name);
    const Checkpoint ckpt = Checkpoint::open(model_dir(name));
    EXPECT_TRUE(ckpt.unexpected_tensors().empty());
    const TextConfig& t = ckpt.config().text;
    const ExpertLayout expected = entry["expert_layout"].get<std::string>() == "released" ? ExpertLayout::InOut : ExpertLayout::OutIn;
    for (const auto& [tensor, shape] : entry["expert_tensor_shapes"].items()) {
      const bool gate_up = tensor.ends_with(names::kExpertsGateUpLeaf);
      const std::int64_t out = gate_up ? 2 * t.moe->intermediate_size : t.hidden_size;
      const std::int64_t in = gate_up ? t.hidden_size : t.moe->intermediate_size;
      EXPECT_EQ(ckpt.tensor(tensor).shape(), shape.get<std::vector<std::int64_t>>()) << tensor;
      EXPECT_EQ(expert_layout(ckpt.tensor(tensor).shape(), t.moe->experts, out, in, tensor), expected) << tensor;
    }
    ++models;
  }
  EXPECT_EQ(models, 2);
}

// The exporter turns both layouts into the same initializers: the decoders' weight files are equal.
TEST(MoeGolden, BothExpertLayoutsExportTheSameWeights) {
  const std::string saved = read_text_file(package_of("moe_a") / (std::string(package::kTextModel) + ".data"));
  const std::string released = read_text_file(package_of("moe_a_released") / (std::string(package::kTextModel) + ".data"));
  EXPECT_FALSE(saved.empty());
  EXPECT_TRUE(saved == released);
}

TEST(MoeGolden, Fp32DecoderMatchesHfOnEveryCase) {
  std::size_t checked = 0;
  for (const test::GoldenCase& c : test::moe_golden_cases()) {
    SCOPED_TRACE(c.name);
    const ModelConfig config = c.config();
    const std::size_t V = static_cast<std::size_t>(config.text.vocab_size);
    const std::vector<float> prefill = c.load("prefill_logits").as_float();
    const std::vector<float> steps = c.load("step_logits").as_float();
    const std::vector<std::int64_t> greedy = c.load("greedy_tokens").as_int64();
    const NpyArray hidden = c.load("hidden_states");
    const std::vector<float> all_hidden = hidden.as_float();
    const std::size_t per_layer = static_cast<std::size_t>(hidden.shape[1] * hidden.shape[2]);
    std::vector<float> first_model_logits;
    for (const std::string model : {"moe_a", "moe_a_released"}) {
      SCOPED_TRACE(model);
      const GreedyRun run = run_greedy(c, package_of(model), 32);
      const double prefill_error =
          test::compare(run.step_logits[0], std::span<const float>(prefill).last(V)).relative();
      EXPECT_LT(prefill_error, 1e-4);
      // HF hidden_states[l + 1]: layer l's output before the DeepStack add (the last is the final norm's).
      double layer_error = 0;
      for (std::size_t l = 0; l + 1 < run.prefill.hidden_states.size(); ++l) {
        layer_error = std::max(layer_error, test::compare(run.prefill.hidden_states[l],
                                                          std::span<const float>(all_hidden).subspan((l + 1) * per_layer, per_layer))
                                                .relative());
      }
      EXPECT_LT(layer_error, 1e-4);
      EXPECT_EQ(run.tokens, greedy);
      double step_error = 0;
      for (std::size_t s = 0; s < run.step_logits.size(); ++s) {
        step_error = std::max(step_error, test::compare(run.step_logits[s], std::span<const float>(steps).subspan(s * V, V)).relative());
      }
      EXPECT_LT(step_error, 1e-4);
      if (first_model_logits.empty()) {
        first_model_logits = run.prefill.logits;
      } else {
        EXPECT_TRUE(run.prefill.logits == first_model_logits) << "the two expert layouts gave different logits";
      }
      std::printf("[ moe fp32 ] %-12s %-15s prefill %.2g  layers %.2g  steps %.2g  tokens %s\n", c.name.c_str(), model.c_str(),
                  prefill_error, layer_error, step_error, run.tokens == greedy ? "identical" : "DIFFER");
    }
    ++checked;
  }
  EXPECT_EQ(checked, manifest()["cases"].size());
  EXPECT_GE(checked, 2u);
}

// Reduced-precision decoders along HF's greedy path (teacher forcing): top-1 agreement and the
// mean KL divergence of the next-token distributions. fp16 runs the MoE kernel in float16; int8 and
// int4 quantize the projections (MatMulNBits) and the experts (QMoE). The fixture's routing has
// near-ties (top-k margins down to 7e-4 in probability) and its greedy path near-ties too, so
// quantization noise flips some experts and tokens: the bounds are loose, KL is what they watch
// (a packing error shows as KL of order 1; tests/export/moe_export_test.cpp checks the block itself).
TEST(MoeGolden, ReducedPrecisionDecodersAgreeWithHf) {
  struct Variant {
    Precision precision;
    int min_agreement;  // of 32 steps, per case
    double max_kl;
  };
  const std::vector<Variant> variants = {{{"fp16", true, WeightFormat::F32}, 30, 0.01},
                                         {{"int8", false, WeightFormat::Int8}, 16, 0.02},
                                         {{"int4", false, WeightFormat::Int4}, 8, 0.1},
                                         // the same int4 package through q3vl's expert kernel (int8 activations)
                                         {{"int4", false, WeightFormat::Int4, package::kKernelTextModel}, 8, 0.1}};
  for (const Variant& variant : variants) {
    std::size_t checked = 0;
    for (const test::GoldenCase& c : test::moe_golden_cases()) {
      SCOPED_TRACE(c.name + " " + variant.precision.tag + " " + variant.precision.text_model);
      const std::vector<std::int64_t> reference = c.load("greedy_tokens").as_int64();
      const GreedyRun run = run_greedy(c, package_of("moe_a", variant.precision), 32, &reference, variant.precision.text_model);
      const std::vector<float> steps = c.load("step_logits").as_float();
      const std::size_t V = run.step_logits[0].size();
      int agree = 0;
      double kl = 0;
      for (std::size_t s = 0; s < 32; ++s) {
        const std::span<const float> p = std::span<const float>(steps).subspan(s * V, V);
        const std::span<const float> q = run.step_logits[s];
        agree += run.tokens[s] == reference[s];
        const float p_max = *std::max_element(p.begin(), p.end());
        const float q_max = *std::max_element(q.begin(), q.end());
        double p_norm = 0, q_norm = 0;
        for (std::size_t v = 0; v < V; ++v) {
          p_norm += std::exp(static_cast<double>(p[v] - p_max));
          q_norm += std::exp(static_cast<double>(q[v] - q_max));
        }
        for (std::size_t v = 0; v < V; ++v) {
          const double log_p = p[v] - p_max - std::log(p_norm);
          const double log_q = q[v] - q_max - std::log(q_norm);
          kl += std::exp(log_p) * (log_p - log_q);
        }
      }
      // Experts chosen differently from HF in the prefill (near-ties flip under quantization noise).
      const TextConfig t = c.config().text;
      const std::vector<std::int64_t> sparse = sparse_layers_of(t);
      const std::vector<std::int64_t> hf_ids = c.load("router_topk_ids").as_int64();
      // (the fp16 decoder's cache inputs are float16; prefill_router_logits feeds float32)
      const std::vector<std::vector<float>> ours =
          variant.precision.fp16 ? std::vector<std::vector<float>>{} : prefill_router_logits(c, package_of("moe_a", variant.precision), sparse, variant.precision.text_model);
      const std::int64_t E = t.moe->experts, k = t.moe->experts_per_token;
      int flips = 0, routed = 0;
      for (std::size_t j = 0; j < ours.size(); ++j) {
        const std::int64_t S = static_cast<std::int64_t>(ours[j].size()) / E;
        for (std::int64_t s = 0; s < S; ++s, ++routed) {
          const Routing r = route(std::span<const float>(ours[j]).subspan(s * E, E), k);
          const std::size_t at = (j * S + s) * k;
          flips += r.experts != std::vector<std::int64_t>(hf_ids.begin() + at, hf_ids.begin() + at + k);
        }
      }
      std::printf("[ moe %s %s ] %-12s top-1 agreement %2d/32  mean KL %.2g", variant.precision.tag.c_str(),
                  variant.precision.text_model.c_str(), c.name.c_str(), agree,
                  kl / 32);
      if (routed > 0) std::printf("  prefill routing differs from HF on %d/%d token-layers", flips, routed);
      std::printf("\n");
      EXPECT_GE(agree, variant.min_agreement);
      EXPECT_LT(kl / 32, variant.max_kl);
      ++checked;
    }
    EXPECT_EQ(checked, manifest()["cases"].size());
  }
}

TEST(MoeGolden, RoutingMatchesHfOnEveryCase) {
  std::size_t checked = 0;
  for (const test::GoldenCase& c : test::moe_golden_cases()) {
    SCOPED_TRACE(c.name);
    const TextConfig t = c.config().text;
    const std::int64_t E = t.moe->experts;
    const std::int64_t k = t.moe->experts_per_token;
    const std::vector<std::int64_t> sparse = sparse_layers_of(t);
    const NpyArray hf_logits = c.load("router_logits");
    const std::int64_t S = hf_logits.shape[1];
    ASSERT_EQ(hf_logits.shape, (std::vector<std::int64_t>{static_cast<std::int64_t>(sparse.size()), S, E}));
    const std::vector<float> hf = hf_logits.as_float();
    const std::vector<std::int64_t> hf_ids = c.load("router_topk_ids").as_int64();
    const std::vector<float> hf_weights = c.load("router_topk_weights").as_float();
    const std::vector<std::vector<float>> ours = prefill_router_logits(c, package_of("moe_a"), sparse);
    ASSERT_EQ(ours.size(), sparse.size());
    double logit_error = 0;
    double weight_error = 0;
    double min_margin = 1;
    std::size_t tokens_routed = 0;
    for (std::size_t j = 0; j < sparse.size(); ++j) {
      const std::span<const float> hf_layer = std::span<const float>(hf).subspan(j * S * E, S * E);
      logit_error = std::max(logit_error, test::compare(ours[j], hf_layer).relative());
      for (std::int64_t s = 0; s < S; ++s) {
        const Routing hf_route = route(hf_layer.subspan(s * E, E), k);
        const Routing our_route = route(std::span<const float>(ours[j]).subspan(s * E, E), k);
        const std::size_t at = (j * S + s) * k;
        const std::vector<std::int64_t> ids(hf_ids.begin() + at, hf_ids.begin() + at + k);
        // The fixture is consistent with HF's router, its choices are no near-ties, and ours agree.
        EXPECT_EQ(hf_route.experts, ids) << "layer " << sparse[j] << " token " << s;
        EXPECT_EQ(our_route.experts, ids) << "layer " << sparse[j] << " token " << s;
        weight_error = std::max(weight_error, test::compare(our_route.weights, std::span<const float>(hf_weights).subspan(at, k)).max_abs);
        min_margin = std::min(min_margin, hf_route.margin);
        ++tokens_routed;
      }
    }
    EXPECT_LT(logit_error, 1e-4);
    EXPECT_LT(weight_error, 1e-5);
    EXPECT_GT(min_margin, 1e-4) << "a near-tie in HF's top-k: logits alone could not tell a wrong expert apart";
    std::printf("[ moe routing ] %-12s %zu token-layers  router logits %.2g  top-k identical  weights %.2g  min margin %.2g\n",
                c.name.c_str(), tokens_routed, logit_error, weight_error, min_margin);
    ++checked;
  }
  EXPECT_EQ(checked, manifest()["cases"].size());
}

// The vision tower is dense Qwen3-VL's: our export of the MoE checkpoint's tower matches HF too.
TEST(MoeGolden, VisionTowerMatchesHf) {
  std::size_t checked = 0;
  test::TempDir dir;
  OnnxEnvironment env;
  for (const test::GoldenCase& c : test::moe_golden_cases()) {
    if (!c.has("pixel_values")) continue;
    SCOPED_TRACE(c.name);
    const Checkpoint ckpt = Checkpoint::open(c.model_dir());
    const fs::path out = dir / c.name;
    fs::create_directories(out);
    export_vision(ckpt, {}, out);
    const VisionEncoder encoder(env, out / package::kVisionModel, ckpt.config());
    const VisualFeatures features = encoder.encode(c.load("pixel_values").as_float(), c.grids());
    const SplitVisualFeatures ours = split_visual_features(features, ckpt.config().text.hidden_size);
    const double merged = test::compare(ours.merged, c.load("image_features").as_float()).relative();
    const double deepstack = test::compare(ours.deepstack, c.load("deepstack_features").as_float()).relative();
    EXPECT_LT(merged, 1e-4);
    EXPECT_LT(deepstack, 1e-4);
    std::printf("[ moe vision ] %-12s merged %.2g  deepstack %.2g\n", c.name.c_str(), merged, deepstack);
    ++checked;
  }
  EXPECT_GE(checked, 1u);
}

TEST(MoeGolden, AsymmetricExpertsAreRefusedNamingThePrecision) {
  const Checkpoint ckpt = Checkpoint::open(model_dir("moe_a"));
  for (const WeightFormat format : {WeightFormat::Int8, WeightFormat::Int4}) {
    TextExportOptions options;
    options.linear.format = format;
    options.linear.symmetric = false;
    try {
      check_text_export_supported(ckpt.config(), options);
      FAIL() << "accepted asymmetric " << to_string(format) << " for a MoE checkpoint";
    } catch (const Unsupported& e) {
      EXPECT_NE(std::string(e.what()).find("asymmetric " + to_string(format)), std::string::npos) << e.what();
    }
    test::TempDir dir;
    EXPECT_THROW(export_text(ckpt, options, dir.path()), Unsupported);
    options.linear.symmetric = true;
    EXPECT_NO_THROW(check_text_export_supported(ckpt.config(), options));
  }
}

// A whole package (q3vl build's path) from a random MoE checkpoint with the real tokenizer: the
// manifest carries the MoE config, the runtime loads it and generates, in fp32 and int4 (int4: through
// text.kernels.onnx, and through text.onnx when asked or when the expert graph's stamp is stale);
// asymmetric int4 is refused before anything is written.
TEST(MoeGolden, WholePackageBuildsLoadsAndGenerates) {
  test::TempDir dir;
  RandomCheckpointOptions random;
  random.tokenizer_dir = Q3VL_TOKENIZER_DIR;
  random.show_progress = false;
  write_random_checkpoint(random_checkpoint_config("moe"), dir / "checkpoint", random);
  PackageOptions options;
  options.show_progress = false;
  build_package(dir / "checkpoint", dir / "package", options);
  const json manifest_json = json::parse(read_text_file(dir / "package" / package::kManifest));
  EXPECT_NE(manifest_json.dump().find("qwen3_vl_moe"), std::string::npos);
  Conversation conversation(Model::load(dir / "package"));
  ReplyOptions short_reply;
  short_reply.max_new_tokens = 4;
  const Reply reply = conversation.send({}, "Hello", short_reply);
  EXPECT_FALSE(reply.tokens.empty());
  EXPECT_LE(reply.tokens.size(), 4u);
  EXPECT_FALSE(fs::exists(dir / "package" / package::kKernelTextModel));  // fp32: ONNX Runtime's MoE only
  options.text.linear.format = WeightFormat::Int4;
  build_package(dir / "checkpoint", dir / "int4", options);
  const std::shared_ptr<const Model> int4_model = Model::load(dir / "int4");
  EXPECT_EQ(int4_model->text_model_note(), "text decoder: text.kernels.onnx (q3vl's int4 kernels)");
  Conversation int4(int4_model);
  EXPECT_FALSE(int4.send({}, "Hello", short_reply).tokens.empty());
  ModelOptions ort_experts;
  ort_experts.q3vl_kernels = false;
  EXPECT_EQ(Model::load(dir / "int4", ort_experts)->text_model_note(), "");
  // A stamp naming another text.onnx (say, text rebuilt since): the expert graph is ignored, said so.
  json stamp = json::parse(read_text_file(dir / "int4" / kKernelTextStamp));
  stamp["text_onnx_sha256"] = std::string(64, '0');
  write_json_file(dir / "int4" / kKernelTextStamp, stamp);
  const std::shared_ptr<const Model> stale = Model::load(dir / "int4");
  EXPECT_EQ(stale->text_model_note(), "text.kernels.onnx ignored: text.onnx changed since it was written (build the package again)");
  EXPECT_FALSE(Conversation(stale).send({}, "Hello", short_reply).tokens.empty());
  // Its float16 scales cut short (say, a copy that stopped): ignored, said so, text.onnx loads.
  write_json_file(dir / "int4" / kKernelTextStamp, kernel_text_stamp(dir / "int4"));
  ASSERT_GT(fs::file_size(dir / "int4" / package::kKernelTextData), 64u);
  fs::resize_file(dir / "int4" / package::kKernelTextData, 64);
  const std::shared_ptr<const Model> cut = Model::load(dir / "int4");
  EXPECT_EQ(cut->text_model_note(),
            "text.kernels.onnx ignored: text.kernels.onnx.data is missing or not the size it was written with (build the package again)");
  EXPECT_FALSE(Conversation(cut).send({}, "Hello", short_reply).tokens.empty());
  // The same cut file under a stamp re-made to match it: loading fails with an error, no crash.
  write_json_file(dir / "int4" / kKernelTextStamp, kernel_text_stamp(dir / "int4"));
  try {
    Model::load(dir / "int4");
    ADD_FAILURE() << "a kernel graph whose data file is cut short loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(package::kKernelTextModel), std::string::npos) << e.what();
  }
  // Hostile stamps (garbled, wrong types, a folder, missing): ignored with a note, text.onnx loads.
  const fs::path stamp_path = dir / "int4" / kKernelTextStamp;
  const std::vector<std::function<void()>> hostile_stamps = {
      [&] { write_text_file(stamp_path, "{not json"); },
      [&] { write_text_file(stamp_path, R"({"format": 7, "text_onnx_sha256": []})"); },
      [&] { fs::remove(stamp_path); fs::create_directory(stamp_path); },
      [&] { fs::remove_all(stamp_path); }};
  std::size_t hostile_checked = 0;
  for (const auto& make_hostile : hostile_stamps) {
    make_hostile();
    const std::shared_ptr<const Model> model = Model::load(dir / "int4");
    EXPECT_EQ(model->text_model_note().rfind("text.kernels.onnx ignored: ", 0), 0u) << model->text_model_note();
    ++hostile_checked;
  }
  EXPECT_EQ(hostile_checked, hostile_stamps.size());
  // A matching stamp beside an empty expert graph: a load error that names the file, not a crash.
  write_json_file(stamp_path, kernel_text_stamp(dir / "int4"));
  write_text_file(dir / "int4" / package::kKernelTextModel, "");
  try {
    Model::load(dir / "int4");
    ADD_FAILURE() << "an empty text.kernels.onnx loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(package::kKernelTextModel), std::string::npos) << e.what();
  }
  // int4 with float activations asked for (accuracy level 1): the experts stay with ONNX Runtime.
  options.text.linear.accuracy_level = 1;
  build_package(dir / "checkpoint", dir / "int4-level1", options);
  EXPECT_FALSE(fs::exists(dir / "int4-level1" / package::kKernelTextModel));
  options.text.linear.accuracy_level = 4;
  options.text.linear.symmetric = false;
  EXPECT_THROW(build_package(dir / "checkpoint", dir / "asymmetric", options), Unsupported);
  EXPECT_FALSE(fs::exists(dir / "asymmetric" / package::kManifest));
}

}  // namespace
}  // namespace q3vl
