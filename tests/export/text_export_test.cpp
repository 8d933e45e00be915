// embedding.onnx + text.onnx against Hugging Face on every golden case: prefill logits, per-layer
// outputs, and 32 greedy tokens decoded step by step through the KV cache; plus cache consistency.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "engine/sampler.h"
#include "export/text_export.h"
#include "export/vision_export.h"
#include "graph/graph_builder.h"
#include "model/checkpoint.h"
#include "package/format.h"
#include "q3vl/error.h"
#include "engine/text_models.h"
#include "support/golden.h"
#include "support/test_support.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

// Exports (once per model and options) into a shared temporary folder.
class PackageCache {
 public:
  fs::path text_package(const test::GoldenCase& c, const TextExportOptions& options, const std::string& tag) {
    const fs::path dir = dir_ / (c.model() + "-" + tag);
    if (!fs::exists(dir / "text.onnx")) {
      fs::create_directories(dir);
      const Checkpoint ckpt = Checkpoint::open(c.model_dir());
      export_embedding(ckpt, dir);
      export_text(ckpt, options, dir);
    }
    return dir;
  }

 private:
  test::TempDir dir_;
};

PackageCache& packages() {
  static PackageCache cache;
  return cache;
}

// The wide visual rows [merged | deepstack...] from the fixture's HF vision outputs.
VisualFeatures hf_visual_features(const test::GoldenCase& c, const ModelConfig& config) {
  return join_visual_features(c.load("image_features").as_float(), c.load("deepstack_features").as_float(),
                              config.text.hidden_size);
}

struct GreedyRun {
  std::vector<std::int64_t> tokens;
  std::vector<std::vector<float>> step_logits;
  DecoderOutput prefill;
};

// Greedy decoding; with `forced`, the given tokens are fed instead of our own argmax (teacher
// forcing, so a quantized model is compared with the reference step by step on the same prefix).
GreedyRun run_greedy(const test::GoldenCase& c, const fs::path& package, int steps,
                     const std::vector<std::int64_t>* forced = nullptr, const std::string& decoder_file = "text.onnx") {
  const ModelConfig config = load_model_config(c.model_dir() / "config.json");
  OnnxEnvironment env;
  EmbeddingModel embedding(env, package / "embedding.onnx", config);
  const DecoderModel decoder_model(env, package / decoder_file, config);
  KvCache decoder = decoder_model.new_cache();
  const std::vector<std::int64_t> ids = c.load("input_ids").as_int64();
  const std::vector<std::int64_t> positions = c.load("position_ids").as_int64();
  const std::int64_t delta = c.load("rope_deltas").as_int64()[0];
  VisualFeatures features;
  if (c.has("pixel_values")) features = hf_visual_features(c, config);
  GreedyRun run;
  run.prefill = decoder_model.forward(decoder, embedding.embed(ids, c.has("pixel_values") ? &features : nullptr), positions);
  std::vector<float> logits(run.prefill.logits.end() - config.text.vocab_size, run.prefill.logits.end());
  for (int step = 0; step < steps; ++step) {
    run.step_logits.push_back(logits);
    run.tokens.push_back(argmax(logits));
    const std::int64_t token = forced != nullptr ? (*forced)[static_cast<std::size_t>(step)] : run.tokens.back();
    if (step + 1 == steps) break;
    const std::int64_t position = decoder.cached_tokens() + delta;
    const std::vector<std::int64_t> next = {token};
    const DecoderOutput out = decoder_model.forward(decoder, embedding.embed(next, nullptr), std::vector<std::int64_t>{position, position, position});
    logits = out.logits;
  }
  return run;
}

TEST(TextExport, Fp32GreedyDecodingMatchesHfOnEveryCase) {
  TextExportOptions options;
  options.hidden_state_outputs = true;
  for (const test::GoldenCase& c : test::golden_cases()) {
    SCOPED_TRACE(c.name);
    const GreedyRun run = run_greedy(c, packages().text_package(c, options, "fp32-debug"), 32);
    const std::vector<float> prefill = c.load("prefill_logits").as_float();
    const std::size_t V = run.step_logits[0].size();
    const test::Difference d = test::compare(run.step_logits[0], std::span<const float>(prefill).last(V));
    EXPECT_LT(d.relative(), 1e-4);
    // Per-layer outputs: HF hidden_states[l + 1] is layer l's output before the DeepStack add, except
    // the last entry, which HF replaces by the final norm's output.
    const NpyArray hidden = c.load("hidden_states");
    const std::vector<float> all_hidden = hidden.as_float();
    const std::size_t per_layer = static_cast<std::size_t>(hidden.shape[1] * hidden.shape[2]);
    double worst_layer = 0;
    for (std::size_t l = 0; l + 1 < run.prefill.hidden_states.size(); ++l) {
      const test::Difference dl = test::compare(run.prefill.hidden_states[l],
                                                std::span<const float>(all_hidden).subspan((l + 1) * per_layer, per_layer));
      worst_layer = std::max(worst_layer, dl.relative());
    }
    EXPECT_LT(worst_layer, 1e-4);
    EXPECT_EQ(run.tokens, c.load("greedy_tokens").as_int64());
    double worst_step = 0;
    if (c.has("step_logits")) {
      const std::vector<float> steps = c.load("step_logits").as_float();
      for (std::size_t s = 0; s < run.step_logits.size(); ++s) {
        worst_step = std::max(worst_step, test::compare(run.step_logits[s], std::span<const float>(steps).subspan(s * V, V)).relative());
      }
    } else {  // full vocabulary: HF stored the 16 largest logits of each step
      const std::vector<std::int64_t> ids = c.load("step_topk_ids").as_int64();
      const std::vector<float> values = c.load("step_topk_logits").as_float();
      for (std::size_t s = 0; s < run.step_logits.size(); ++s) {
        std::vector<float> ours;
        for (std::size_t k = 0; k < 16; ++k) ours.push_back(run.step_logits[s][static_cast<std::size_t>(ids[s * 16 + k])]);
        worst_step = std::max(worst_step, test::compare(ours, std::span<const float>(values).subspan(s * 16, 16)).relative());
      }
    }
    EXPECT_LT(worst_step, 1e-4);
    std::printf("[ text fp32 ] %-20s prefill %.2g  layers %.2g  steps %.2g  tokens %s\n", c.name.c_str(), d.relative(),
                worst_layer, worst_step, run.tokens == c.load("greedy_tokens").as_int64() ? "identical" : "DIFFER");
  }
}

// Prefill N then single steps == one prefill of the longer sequence; a second prompt appended to
// the cache (multi-turn) == prefill of both.
TEST(TextExport, KvCacheStepsEqualALongerPrefill) {
  int checked = 0;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (c.name != "small_a_two_images" && c.name != "full_two_turn") continue;
    SCOPED_TRACE(c.name);
    ++checked;
    const fs::path package = packages().text_package(c, {}, "fp32");
    const ModelConfig config = load_model_config(c.model_dir() / "config.json");
    OnnxEnvironment env;
    EmbeddingModel embedding(env, package / "embedding.onnx", config);
    const std::vector<std::int64_t> ids = c.load("input_ids").as_int64();
    const std::vector<std::int64_t> positions = c.load("position_ids").as_int64();
    const VisualFeatures features = hf_visual_features(c, config);
    const std::vector<float> embeds = embedding.embed(ids, &features);
    const std::size_t S = ids.size();
    const std::size_t W = embeds.size() / S;
    auto positions_of = [&](std::size_t begin, std::size_t end) {
      std::vector<std::int64_t> p;
      for (std::size_t axis = 0; axis < 3; ++axis) p.insert(p.end(), positions.begin() + static_cast<std::ptrdiff_t>(axis * S + begin), positions.begin() + static_cast<std::ptrdiff_t>(axis * S + end));
      return p;
    };
    auto embeds_of = [&](std::size_t begin, std::size_t end) {
      return std::vector<float>(embeds.begin() + static_cast<std::ptrdiff_t>(begin * W), embeds.begin() + static_cast<std::ptrdiff_t>(end * W));
    };
    const DecoderModel whole_model(env, package / "text.onnx", config);
    KvCache whole = whole_model.new_cache();
    const std::vector<float> reference = whole_model.forward(whole, embeds, positions).logits;

    // The split points leave the image blocks inside the first part.
    const std::size_t first = S - 4;
    const DecoderModel stepped_model(env, package / "text.onnx", config);
    KvCache stepped = stepped_model.new_cache();
    stepped_model.forward(stepped, embeds_of(0, first), positions_of(0, first));
    std::vector<float> last;
    for (std::size_t i = first; i < S; ++i) last = stepped_model.forward(stepped, embeds_of(i, i + 1), positions_of(i, i + 1)).logits;
    EXPECT_LT(test::compare(last, reference).relative(), 1e-5);

    const DecoderModel appended_model(env, package / "text.onnx", config);
    KvCache appended = appended_model.new_cache();
    appended_model.forward(appended, embeds_of(0, first), positions_of(0, first));
    const std::vector<float> second = appended_model.forward(appended, embeds_of(first, S), positions_of(first, S)).logits;
    EXPECT_LT(test::compare(second, reference).relative(), 1e-5);
  }
  EXPECT_EQ(checked, 2) << "a case this test names was renamed";
}

// The cache grows past its first allocation, can be truncated to a prefix and continued, and
// refuses to overflow the context: all against a plain prefill of the same tokens.
TEST(DecoderModel, CachesGrowTruncateAndReportOverflow) {
  const test::GoldenCase c = test::golden_case("small_b_text_only");
  const fs::path package = packages().text_package(c, {}, "fp32");
  const ModelConfig config = load_model_config(c.model_dir() / "config.json");
  OnnxEnvironment env;
  EmbeddingModel embedding(env, package / "embedding.onnx", config);
  std::vector<std::int64_t> ids;
  for (std::int64_t i = 0; i < 300; ++i) ids.push_back((i * 37 + 11) % 300);  // text ids of this vocabulary
  const std::vector<float> embeds = embedding.embed(ids, nullptr);
  const std::size_t W = embeds.size() / ids.size();
  auto positions = [](std::int64_t begin, std::int64_t end) {
    std::vector<std::int64_t> p;
    for (int axis = 0; axis < 3; ++axis) for (std::int64_t i = begin; i < end; ++i) p.push_back(i);
    return p;
  };
  auto slice = [&](std::int64_t begin, std::int64_t end) {
    return std::vector<float>(embeds.begin() + begin * static_cast<std::ptrdiff_t>(W), embeds.begin() + end * static_cast<std::ptrdiff_t>(W));
  };
  const DecoderModel decoder(env, package / "text.onnx", config);
  KvCache whole = decoder.new_cache(512);
  const std::vector<float> reference = decoder.forward(whole, embeds, positions(0, 300)).logits;

  KvCache stepped = decoder.new_cache(512);
  decoder.forward(stepped, slice(0, 200), positions(0, 200));
  std::vector<float> last;
  for (std::int64_t i = 200; i < 300; ++i) last = decoder.forward(stepped, slice(i, i + 1), positions(i, i + 1)).logits;  // crosses 256
  EXPECT_LT(test::compare(last, reference).relative(), 1e-5);

  KvCache rewound = decoder.new_cache(512);
  std::vector<float> wrong = slice(0, 300);
  std::fill(wrong.begin() + 250 * static_cast<std::ptrdiff_t>(W), wrong.end(), 0.5f);  // a diverging tail
  decoder.forward(rewound, wrong, positions(0, 300));
  rewound.truncate(250);
  EXPECT_LT(test::compare(decoder.forward(rewound, slice(250, 300), positions(250, 300)).logits, reference).relative(), 1e-5);

  KvCache small = decoder.new_cache(64);
  EXPECT_THROW(decoder.forward(small, slice(0, 65), positions(0, 65)), InvalidInput);
  decoder.forward(small, slice(0, 60), positions(0, 60));
  EXPECT_THROW(decoder.forward(small, slice(60, 65), positions(60, 65)), InvalidInput);
}

// int8 / int4 decoders against HF along HF's own greedy path: top-1 agreement per step and the
// mean KL divergence of the next-token distributions (reported; loose bounds catch a broken export).
// The int4 package is run twice: text.onnx (ONNX Runtime's MatMulNBits) and text.kernels.onnx
// (q3vl's kernel), which must agree with HF as well as MatMulNBits does.
TEST(TextExport, ReducedPrecisionDecodersAgreeWithHf) {
  struct Variant {
    std::string name;
    TextExportOptions options;
    double min_agreement;
    double max_kl;
    std::string decoder_file = "text.onnx";
  };
  std::vector<Variant> variants;
  for (WeightFormat format : {WeightFormat::Int8, WeightFormat::Int4}) {
    TextExportOptions options;
    options.linear.format = format;
    options.linear.block_size = 16;  // the tiny models' widths are 16..192
    options.lm_head = options.linear;
    variants.push_back({to_string(format), options, format == WeightFormat::Int8 ? 0.9 : 0.5,
                        format == WeightFormat::Int8 ? 0.05 : 0.5});
  }
  variants.push_back(variants.back());
  variants.back().decoder_file = package::kKernelTextModel;
  TextExportOptions fp16;
  fp16.fp16 = true;
  variants.push_back({"fp16", fp16, 0.9, 0.05});
  std::map<std::string, std::pair<double, double>> means;  // decoder -> mean agreement, mean KL (int4)
  for (const Variant& variant : variants) {
    const TextExportOptions& options = variant.options;
    double agree_sum = 0;
    double kl_sum = 0;
    int cases = 0;
    const std::string label = variant.name + (variant.decoder_file == "text.onnx" ? "" : " " + variant.decoder_file);
    for (const test::GoldenCase& c : test::golden_cases()) {
      if (!c.has("step_logits")) continue;  // full logits are stored for the small-vocabulary models
      const std::vector<std::int64_t> reference_tokens = c.load("greedy_tokens").as_int64();
      const fs::path package = packages().text_package(c, options, variant.name);
      ASSERT_TRUE(fs::exists(package / variant.decoder_file)) << package / variant.decoder_file;
      const GreedyRun run = run_greedy(c, package, 32, &reference_tokens, variant.decoder_file);
      const std::vector<float> steps = c.load("step_logits").as_float();
      const std::size_t V = run.step_logits[0].size();
      int agree = 0;
      double kl = 0;
      for (std::size_t s = 0; s < 32; ++s) {
        const std::span<const float> p_logits = std::span<const float>(steps).subspan(s * V, V);
        agree += run.tokens[s] == reference_tokens[s];
        const float p_max = *std::max_element(p_logits.begin(), p_logits.end());
        const float q_max = *std::max_element(run.step_logits[s].begin(), run.step_logits[s].end());
        double p_norm = 0, q_norm = 0;
        for (std::size_t v = 0; v < V; ++v) {
          p_norm += std::exp(static_cast<double>(p_logits[v] - p_max));
          q_norm += std::exp(static_cast<double>(run.step_logits[s][v] - q_max));
        }
        for (std::size_t v = 0; v < V; ++v) {
          const double log_p = p_logits[v] - p_max - std::log(p_norm);
          const double log_q = run.step_logits[s][v] - q_max - std::log(q_norm);
          kl += std::exp(log_p) * (log_p - log_q);
        }
      }
      std::printf("[ text %s ] %-20s top-1 agreement %2d/32  mean KL %.4f\n", label.c_str(), c.name.c_str(),
                  agree, kl / 32);
      agree_sum += agree / 32.0;
      kl_sum += kl / 32;
      ++cases;
    }
    EXPECT_EQ(cases, 4) << "the small-vocabulary golden cases (with step_logits) went missing";
    EXPECT_GT(agree_sum / cases, variant.min_agreement) << variant.name;
    EXPECT_LT(kl_sum / cases, variant.max_kl) << variant.name;
    if (variant.name == "int4") means[variant.decoder_file] = {agree_sum / cases, kl_sum / cases};
  }
  ASSERT_EQ(means.size(), 2u);
  const auto& [ort_agreement, ort_kl] = means["text.onnx"];
  const auto& [our_agreement, our_kl] = means[package::kKernelTextModel];
  EXPECT_GE(our_agreement, ort_agreement - 0.05);
  EXPECT_LE(our_kl, ort_kl * 1.2 + 0.005);
}

// text.kernels.onnx runs every layer's attention on q3vl's QkvAttention (q/k norms and rotations
// inside, decode steps on its kernel) and its MLP's SwiGLU inside the down projection; text.onnx, which other runtimes read,
// keeps ONNX Runtime's ops.
TEST(TextExport, TheKernelGraphRunsEveryLayersAttentionAndSwigluOnQ3vlsOps) {
  TextExportOptions options;
  options.linear.format = WeightFormat::Int4;
  options.linear.block_size = 16;
  options.lm_head = options.linear;
  const test::GoldenCase c = test::golden_cases().front();
  const fs::path package = packages().text_package(c, options, "int4");
  const auto attention_nodes = [&](const std::string& file, const std::string& domain) {
    onnx::ModelProto model;
    std::ifstream in(package / file, std::ios::binary);
    if (!model.ParseFromIstream(&in)) throw Error("cannot parse " + file);
    std::int64_t count = 0;
    for (const onnx::NodeProto& node : model.graph().node()) count += node.op_type() == "GroupQueryAttention" && node.domain() == domain;
    return count;
  };
  const std::int64_t layers = c.config().text.num_hidden_layers;
  // Each MLP's SwiGLU folded into its down projection: no Sigmoid left, one fused Int4MatMul a layer.
  onnx::ModelProto kernels;
  std::ifstream in(package / package::kKernelTextModel, std::ios::binary);
  ASSERT_TRUE(kernels.ParseFromIstream(&in));
  std::int64_t sigmoids = 0, fused = 0;
  for (const onnx::NodeProto& node : kernels.graph().node()) {
    sigmoids += node.op_type() == "Sigmoid";
    for (const onnx::AttributeProto& a : node.attribute()) fused += node.op_type() == package::kInt4MatMulOp && a.name() == "swiglu" && a.i() == 1;
  }
  EXPECT_EQ(sigmoids, 0);
  EXPECT_EQ(fused, layers);
  // Each layer's attention with its q/k/v split, norms and rotations: QkvAttention over half-float
  // caches (every layer's is one), nothing else left.
  std::int64_t fused_attention = 0, rotations = 0, reshapes = 0;
  for (const onnx::NodeProto& node : kernels.graph().node()) {
    fused_attention += node.op_type() == package::kQkvAttentionHalfCacheOp && node.domain() == package::kQ3vlOpDomain;
    rotations += node.op_type() == "RotaryEmbedding";
    reshapes += node.op_type() == "Reshape";
  }
  EXPECT_EQ(fused_attention, layers);
  EXPECT_EQ(rotations, 0);
  EXPECT_LE(reshapes, 2);  // the rotary tables' own, once for all layers
  EXPECT_EQ(attention_nodes(package::kKernelTextModel, graph::kMicrosoftDomain), 0);
  EXPECT_EQ(attention_nodes(package::kTextModel, graph::kMicrosoftDomain), layers);
  // The caches the runtime binds: half floats in the kernel graph, float32 in text.onnx (genai's).
  std::map<std::string, int> types;
  for (const onnx::ValueInfoProto& v : kernels.graph().input()) types[v.name()] = v.type().tensor_type().elem_type();
  for (const onnx::ValueInfoProto& v : kernels.graph().output()) types[v.name()] = v.type().tensor_type().elem_type();
  std::size_t half_caches = 0;
  for (std::int64_t layer = 0; layer < layers; ++layer) {
    for (const std::string& name : {package::past_key(layer), package::past_value(layer), package::present_key(layer), package::present_value(layer)}) {
      EXPECT_EQ(types[name], onnx::TensorProto::FLOAT16) << name;
      ++half_caches;
    }
  }
  EXPECT_EQ(half_caches, static_cast<std::size_t>(4 * layers));
  onnx::ModelProto text;
  std::ifstream text_in(package / package::kTextModel, std::ios::binary);
  ASSERT_TRUE(text.ParseFromIstream(&text_in));
  std::size_t float_caches = 0;
  for (const onnx::ValueInfoProto& v : text.graph().input()) {
    if (v.name() != package::past_key(0)) continue;
    EXPECT_EQ(v.type().tensor_type().elem_type(), onnx::TensorProto::FLOAT);
    ++float_caches;
  }
  EXPECT_EQ(float_caches, 1u);
}

}  // namespace
}  // namespace q3vl
