// q3vl's GroupQueryAttention op (ort/attention_op.h) against ONNX Runtime's, node for node on the
// same inputs: decode steps (q3vl's kernel) within float rounding of ONNX Runtime's and with the
// same cache contents, for a batch of sequences of different lengths with the cache appended in
// place (as the runtime binds it) and for a cache copied into a new buffer; prompts (handed to ONNX
// Runtime's kernel) identical to the last bit, first and later turns. A length outside the cache is
// an error naming the op.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "export/kernel_graph.h"
#include "graph/graph_builder.h"
#include "ort/onnx_session.h"
#include "math/half_float.h"
#include "package/format.h"
#include "q3vl/error.h"
#include "support/test_support.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kHeads = 8, kKvHeads = 2, kHeadDim = 64;

// One GroupQueryAttention node as the exporter writes it, in ONNX Runtime's domain or q3vl's.
fs::path attention_model(const fs::path& dir, bool ours) {
  graph::GraphBuilder g("attention");
  const graph::Shape tokens{std::string("batch"), std::string("sequence"), kHeads * kHeadDim};
  const graph::Shape kv_tokens{std::string("batch"), std::string("sequence"), kKvHeads * kHeadDim};
  const graph::Shape cache{std::string("batch"), kKvHeads, std::string("past"), kHeadDim};
  const std::vector<std::string> inputs = {g.input("q", graph::kFloat, tokens),
                                           g.input("k", graph::kFloat, kv_tokens),
                                           g.input("v", graph::kFloat, kv_tokens),
                                           g.input("past_key", graph::kFloat, cache),
                                           g.input("past_value", graph::kFloat, cache),
                                           g.input("seqlens_k", graph::kInt32, {std::string("batch")}),
                                           g.input("total_sequence_length", graph::kInt32, {std::int64_t{1}})};
  const auto out = g.node("GroupQueryAttention", inputs,
                          {{"num_heads", kHeads}, {"kv_num_heads", kKvHeads}, {"scale", static_cast<float>(1.0 / std::sqrt(kHeadDim))}}, 3,
                          ours ? package::kQ3vlOpDomain : graph::kMicrosoftDomain, "gqa");
  const graph::Shape present{std::string("batch"), kKvHeads, std::string("present"), kHeadDim};
  g.output(out[0], "out", graph::kFloat, tokens);
  g.output(out[1], "present_key", graph::kFloat, present);
  g.output(out[2], "present_value", graph::kFloat, present);
  if (ours) {
    onnx::OperatorSetIdProto* opset = g.model().add_opset_import();
    opset->set_domain(package::kQ3vlOpDomain);
    opset->set_version(1);
  }
  const fs::path path = dir / (ours ? "ours.onnx" : "ort.onnx");
  g.save(path);
  return path;
}

// The exporter's attention preamble and attention in ONNX Runtime's ops: qkv -> Split -> (q, k:
// Reshape to heads, SimplifiedLayerNormalization, Reshape back, RotaryEmbedding) -> GroupQueryAttention.
// With `fused`, after q3vl's rewrite (use_q3vl_attention), which must fold it into one
// QkvAttentionHalfCache; with `float_cache` too, that node turned back into the float32-cache
// QkvAttention, to test that op as well.
fs::path qkv_attention_model(const fs::path& dir, bool fused, bool float_cache = false) {
  graph::GraphBuilder g("qkv_attention");
  const std::int64_t width = (kHeads + 2 * kKvHeads) * kHeadDim;
  const std::string qkv = g.input("qkv", graph::kFloat, {std::string("batch"), std::string("sequence"), width});
  const std::string rows = g.input("rows", graph::kInt64, {std::string("batch"), std::string("sequence")});
  const std::string cos = g.input("cos", graph::kFloat, {std::string("tokens"), kHeadDim / 2});
  const std::string sin = g.input("sin", graph::kFloat, {std::string("tokens"), kHeadDim / 2});
  const graph::Shape cache{std::string("batch"), kKvHeads, std::string("past"), kHeadDim};
  const std::string past_key = g.input("past_key", graph::kFloat, cache), past_value = g.input("past_value", graph::kFloat, cache);
  const std::string seqlens = g.input("seqlens_k", graph::kInt32, {std::string("batch")});
  const std::string total = g.input("total_sequence_length", graph::kInt32, {std::int64_t{1}});
  const auto split = g.node("Split", {qkv, g.constant_i64({kHeads * kHeadDim, kKvHeads * kHeadDim, kKvHeads * kHeadDim})},
                            {{"axis", std::int64_t{-1}}}, 3, "", "qkv_split");
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> around_one(0.5f, 1.5f);
  const auto norm_rotate = [&](const std::string& x, std::int64_t heads, const std::string& name) {
    std::vector<float> weight(kHeadDim);
    for (float& w : weight) w = around_one(rng);
    const std::string viewed = g.op("Reshape", {x, g.constant_i64({0, 0, heads, kHeadDim})});
    const std::string normed = g.op("SimplifiedLayerNormalization", {viewed, g.initializer(name, {kHeadDim}, weight)},
                                    {{"axis", std::int64_t{-1}}, {"epsilon", 1e-6f}, {"stash_type", std::int64_t{1}}});
    return g.op("RotaryEmbedding", {g.op("Reshape", {normed, g.constant_i64({0, 0, -1})}), rows, cos, sin},
                {{"interleaved", std::int64_t{0}}, {"num_heads", heads}}, graph::kMicrosoftDomain);
  };
  const std::string q = norm_rotate(split[0], kHeads, "q_norm"), k = norm_rotate(split[1], kKvHeads, "k_norm");
  const auto out = g.node("GroupQueryAttention", {q, k, split[2], past_key, past_value, seqlens, total},
                          {{"num_heads", kHeads}, {"kv_num_heads", kKvHeads}, {"scale", static_cast<float>(1.0 / std::sqrt(kHeadDim))}}, 3,
                          graph::kMicrosoftDomain, "gqa");
  const graph::Shape present{std::string("batch"), kKvHeads, std::string("present"), kHeadDim};
  g.output(out[0], "out", graph::kFloat, {std::string("batch"), std::string("sequence"), kHeads * kHeadDim});
  g.output(out[1], "present_key", graph::kFloat, present);
  g.output(out[2], "present_value", graph::kFloat, present);
  if (fused) {
    const KernelRewrite done = use_q3vl_attention(g.model());
    if (done.attention != 1 || done.qkv_attention != 1 || done.half_caches != 1) throw Error("the preamble was not folded into QkvAttentionHalfCache");
    int left = 0;  // besides the Identity nodes that name the graph outputs
    for (const onnx::NodeProto& node : g.graph().node()) left += node.op_type() != "Identity";
    if (left != 1) throw Error(std::to_string(left) + " nodes left after the fold");
    if (float_cache) {
      for (onnx::NodeProto& node : *g.graph().mutable_node()) {
        if (node.op_type() == package::kQkvAttentionHalfCacheOp) node.set_op_type(package::kQkvAttentionOp);
      }
      const auto to_float = [](auto& values) {
        for (onnx::ValueInfoProto& v : values) {
          if (v.type().tensor_type().elem_type() == onnx::TensorProto::FLOAT16) v.mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
        }
      };
      to_float(*g.graph().mutable_input());
      to_float(*g.graph().mutable_output());
      to_float(*g.graph().mutable_value_info());
    }
  }
  const fs::path path = dir / (!fused ? "qkv_ort.onnx" : float_cache ? "qkv_ours_float.onnx" : "qkv_ours.onnx");
  g.save(path);
  return path;
}

struct Step {
  std::int64_t batch, tokens, capacity;
  std::vector<std::int32_t> seqlens;
  std::int32_t total;
  bool in_place;  // present bound to the past buffers
};

struct Result {
  std::vector<float> out, present_key, present_value;
};

std::vector<float> random_floats(std::size_t count, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(count);
  for (float& x : v) x = normal(rng);
  return v;
}

// Runs one step on random inputs from `seed`: q, k, v, or with `qkv_form` the fused projection and
// random rotary angles per token. With `half_past` the random past caches are rounded to half floats
// first, and bound as halves where the session's caches are (its present caches returned as floats).
Result run_step(const OnnxSession& session, const Step& step, unsigned seed, bool qkv_form = false, std::int64_t rows_shift = 0,
                bool half_past = false) {
  std::mt19937 rng(seed);
  const std::int64_t B = step.batch, S = step.tokens, P = step.capacity;
  std::vector<float> q = random_floats(static_cast<std::size_t>(B * S * kHeads * kHeadDim), rng);
  std::vector<float> k = random_floats(static_cast<std::size_t>(B * S * kKvHeads * kHeadDim), rng);
  std::vector<float> v = random_floats(k.size(), rng);
  std::vector<float> past_key = random_floats(static_cast<std::size_t>(B * kKvHeads * P * kHeadDim), rng);
  std::vector<float> past_value = random_floats(past_key.size(), rng);
  std::vector<std::uint16_t> half_key, half_value;
  bool half_cache = false;
  for (std::size_t i = 0; i < session.input_names().size(); ++i) {
    if (session.input_names()[i] != "past_key") continue;
    half_cache = session.session().GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
  }
  if (half_past || half_cache) {
    for (std::vector<float>* cache : {&past_key, &past_value}) {
      for (float& x : *cache) x = fp16_to_float(float_to_fp16(x));
    }
  }
  for (const float x : past_key) half_key.push_back(float_to_fp16(x));
  for (const float x : past_value) half_value.push_back(float_to_fp16(x));
  std::vector<std::int32_t> seqlens = step.seqlens, total{step.total};
  const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  const auto int32s = [&](std::vector<std::int32_t>& data, std::vector<std::int64_t> shape) {
    return Ort::Value::CreateTensor<std::int32_t>(cpu, data.data(), data.size(), shape.data(), shape.size());
  };
  Ort::IoBinding binding(session.session());
  std::vector<Ort::Value> held;
  held.push_back(tensor_view(q, {B, S, kHeads * kHeadDim}));
  held.push_back(tensor_view(k, {B, S, kKvHeads * kHeadDim}));
  held.push_back(tensor_view(v, {B, S, kKvHeads * kHeadDim}));
  const std::vector<std::int64_t> cache_shape{B, kKvHeads, P, kHeadDim};
  const auto halves = [&](std::vector<std::uint16_t>& data) {
    return Ort::Value::CreateTensor(cpu, data.data(), data.size() * sizeof(std::uint16_t), cache_shape.data(), cache_shape.size(),
                                    ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16);
  };
  held.push_back(half_cache ? halves(half_key) : tensor_view(past_key, cache_shape));
  held.push_back(half_cache ? halves(half_value) : tensor_view(past_value, cache_shape));
  held.push_back(int32s(seqlens, {B}));
  held.push_back(int32s(total, {1}));
  const char* names[] = {"q", "k", "v", "past_key", "past_value", "seqlens_k", "total_sequence_length"};
  std::vector<float> qkv, cos, sin;
  std::vector<std::int64_t> rows(static_cast<std::size_t>(B * S));
  for (std::size_t i = 0; i < held.size(); ++i) {
    if (!qkv_form || i >= 3) binding.BindInput(names[i], held[i]);
  }
  if (qkv_form) {
    qkv = random_floats(static_cast<std::size_t>(B * S * (kHeads + 2 * kKvHeads) * kHeadDim), rng);
    std::uniform_real_distribution<float> angle(-40.0f, 40.0f);
    for (std::int64_t i = 0; i < B * S * kHeadDim / 2; ++i) {
      const float a = angle(rng);
      cos.push_back(std::cos(a));
      sin.push_back(std::sin(a));
    }
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<std::int64_t>(rows.size() - 1 - i) + rows_shift;  // any row order
    held.push_back(tensor_view(qkv, {B, S, (kHeads + 2 * kKvHeads) * kHeadDim}));
    held.push_back(tensor_view(rows, {B, S}));
    held.push_back(tensor_view(cos, {B * S, kHeadDim / 2}));
    held.push_back(tensor_view(sin, {B * S, kHeadDim / 2}));
    const char* qkv_names[] = {"qkv", "rows", "cos", "sin"};
    for (std::size_t i = 0; i < 4; ++i) binding.BindInput(qkv_names[i], held[7 + i]);
  }
  std::vector<float> out(q.size());
  Ort::Value out_value = tensor_view(out, {B, S, kHeads * kHeadDim});
  binding.BindOutput("out", out_value);
  if (step.in_place) {
    binding.BindOutput("present_key", held[3]);
    binding.BindOutput("present_value", held[4]);
  } else {
    binding.BindOutput("present_key", cpu);
    binding.BindOutput("present_value", cpu);
  }
  session.run(binding);
  Result result{out, past_key, past_value};
  const auto floats_of = [](const std::uint16_t* data, std::size_t count) {
    std::vector<float> floats(count);
    for (std::size_t i = 0; i < count; ++i) floats[i] = fp16_to_float(data[i]);
    return floats;
  };
  if (step.in_place && half_cache) {
    result.present_key = floats_of(half_key.data(), half_key.size());
    result.present_value = floats_of(half_value.data(), half_value.size());
  }
  if (!step.in_place) {
    const std::vector<Ort::Value> outputs = binding.GetOutputValues();
    for (std::size_t i : {std::size_t{1}, std::size_t{2}}) {
      const std::size_t count = outputs[i].GetTensorTypeAndShapeInfo().GetElementCount();
      std::vector<float>& present = i == 1 ? result.present_key : result.present_value;
      if (half_cache) {
        present = floats_of(static_cast<const std::uint16_t*>(outputs[i].GetTensorRawData()), count);
      } else {
        const float* data = outputs[i].GetTensorData<float>();
        present.assign(data, data + count);
      }
    }
  }
  return result;
}

double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return err / scale;
}

TEST(AttentionOp, DecodeStepsMatchOnnxRuntimesAndPromptsAreIdentical) {
  test::TempDir dir;
  OnnxEnvironment env(2);
  const OnnxSession ort(env, attention_model(dir.path(), false));
  const OnnxSession ours(env, attention_model(dir.path(), true));
  const std::vector<std::pair<Step, bool>> steps = {
      // decode steps: q3vl's kernel
      {{2, 1, 16, {4, 9}, 10, true}, false},   // two sequences of different lengths, appended in place
      {{1, 1, 16, {0}, 1, true}, false},       // a first prompt of one token
      {{1, 1, 6, {6}, 7, false}, false},       // the cache copied into a larger present buffer
      {{3, 1, 300, {299, 0, 150}, 300, true}, false},
      // prompts: ONNX Runtime's kernel inside q3vl's op
      {{1, 5, 16, {4}, 5, true}, true},        // a first prompt
      {{1, 3, 16, {7}, 8, true}, true},        // a later turn after 5 cached tokens
  };
  std::size_t checked = 0;
  for (const auto& [step, prompt] : steps) {
    const unsigned seed = static_cast<unsigned>(17 * checked + 1);
    const Result expected = run_step(ort, step, seed);
    const Result got = run_step(ours, step, seed);
    const double difference = relative_difference(got.out, expected.out);
    std::printf("[ batch %lld, %lld tokens, %s ] attention %.2g from ONNX Runtime's\n", static_cast<long long>(step.batch),
                static_cast<long long>(step.tokens), step.in_place ? "in place" : "copied cache", difference);
    if (prompt) {
      EXPECT_EQ(got.out, expected.out);
    } else {
      EXPECT_LT(difference, 1e-5);
    }
    // The positions a step writes and reads: each sequence's seqlens + 1 (capacities may differ).
    for (std::int64_t b = 0; b < step.batch; ++b) {
      const std::int64_t used = step.seqlens[static_cast<std::size_t>(b)] + 1;
      const std::int64_t got_capacity = static_cast<std::int64_t>(got.present_key.size()) / (step.batch * kKvHeads * kHeadDim);
      const std::int64_t want_capacity = static_cast<std::int64_t>(expected.present_key.size()) / (step.batch * kKvHeads * kHeadDim);
      for (std::int64_t j = 0; j < kKvHeads; ++j) {
        for (std::int64_t at = 0; at < used * kHeadDim; ++at) {
          const auto ours_at = static_cast<std::size_t>((b * kKvHeads + j) * got_capacity * kHeadDim + at);
          const auto theirs_at = static_cast<std::size_t>((b * kKvHeads + j) * want_capacity * kHeadDim + at);
          ASSERT_EQ(got.present_key[ours_at], expected.present_key[theirs_at]) << "sequence " << b << ", head " << j;
          ASSERT_EQ(got.present_value[ours_at], expected.present_value[theirs_at]) << "sequence " << b << ", head " << j;
        }
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, steps.size());
}

// QkvAttention (the preamble folded in) against ONNX Runtime's ten nodes: within float rounding on
// decode steps and prompts, and the same keys and values in the cache.
TEST(AttentionOp, QkvAttentionMatchesTheNodesItReplaces) {
  test::TempDir dir;
  OnnxEnvironment env(2);
  const OnnxSession ort(env, qkv_attention_model(dir.path(), false));
  const OnnxSession ours(env, qkv_attention_model(dir.path(), true, /*float_cache=*/true));
  const std::vector<Step> steps = {{2, 1, 16, {4, 9}, 10, true}, {1, 1, 6, {6}, 7, false}, {1, 5, 16, {4}, 5, true}, {1, 3, 16, {7}, 8, true}};
  std::size_t checked = 0;
  for (const Step& step : steps) {
    const unsigned seed = static_cast<unsigned>(31 * checked + 5);
    const Result expected = run_step(ort, step, seed, true);
    const Result got = run_step(ours, step, seed, true);
    const double difference = relative_difference(got.out, expected.out);
    std::printf("[ QkvAttention, batch %lld, %lld tokens ] attention %.2g, keys %.2g from ONNX Runtime's nodes\n", static_cast<long long>(step.batch),
                static_cast<long long>(step.tokens), difference, relative_difference(got.present_key, expected.present_key));
    EXPECT_LT(difference, 1e-5);
    if (got.present_key.size() == expected.present_key.size()) {
      EXPECT_LT(relative_difference(got.present_key, expected.present_key), 1e-5);
      EXPECT_EQ(got.present_value, expected.present_value);
    } else {
      ADD_FAILURE() << "present caches of " << got.present_key.size() << " and " << expected.present_key.size() << " values";
    }
    ++checked;
  }
  EXPECT_EQ(checked, steps.size());
  // A rotary row outside the cos/sin table is an error, not a read past it.
  for (const std::int64_t shift : {std::int64_t{1000}, std::int64_t{-1000}}) {
    try {
      run_step(ours, steps[0], 1, true, shift);
      ADD_FAILURE() << "ran with rotary rows shifted by " << shift;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cos/sin table"), std::string::npos) << e.what();
    }
  }
}

// QkvAttentionHalfCache (the exporter's choice where every layer's attention is a QkvAttention)
// against ONNX Runtime's ten nodes over the same past caches rounded to half floats: decode steps
// (whose new key and value are rounded as they are appended) within half-float rounding, prompts
// (ONNX Runtime's kernel on the widened cache) within float rounding; the present caches hold ONNX
// Runtime's keys and values rounded to half floats, in place or copied.
TEST(AttentionOp, QkvAttentionOverAHalfCacheMatchesTheNodesOverTheRoundedCache) {
  test::TempDir dir;
  OnnxEnvironment env(2);
  const OnnxSession ort(env, qkv_attention_model(dir.path(), false));
  const OnnxSession ours(env, qkv_attention_model(dir.path(), true));
  const std::vector<Step> steps = {{2, 1, 16, {4, 9}, 10, true}, {1, 1, 6, {6}, 7, false}, {1, 5, 16, {4}, 5, true},
                                   {1, 3, 16, {7}, 8, true},     {2, 3, 12, {2, 2}, 3, true}, {1, 4, 6, {8}, 9, false}};
  std::size_t checked = 0;
  for (const Step& step : steps) {
    const unsigned seed = static_cast<unsigned>(13 * checked + 3);
    const Result expected = run_step(ort, step, seed, true, 0, /*half_past=*/true);
    const Result got = run_step(ours, step, seed, true);
    const double difference = relative_difference(got.out, expected.out);
    const bool prompt = step.tokens > 1;
    std::printf("[ QkvAttentionHalfCache, batch %lld, %lld tokens, %s ] attention %.2g from ONNX Runtime's nodes\n",
                static_cast<long long>(step.batch), static_cast<long long>(step.tokens), step.in_place ? "in place" : "copied", difference);
    EXPECT_LT(difference, prompt ? 1e-5 : 2e-3);
    for (std::int64_t b = 0; b < step.batch; ++b) {  // the positions each sequence holds after the step
      const std::int64_t used = step.seqlens[static_cast<std::size_t>(b)] + 1;
      const std::int64_t got_capacity = static_cast<std::int64_t>(got.present_key.size()) / (step.batch * kKvHeads * kHeadDim);
      const std::int64_t want_capacity = static_cast<std::int64_t>(expected.present_key.size()) / (step.batch * kKvHeads * kHeadDim);
      double worst = 0;
      for (std::int64_t j = 0; j < kKvHeads; ++j) {
        for (std::int64_t at = 0; at < used * kHeadDim; ++at) {
          const auto ours_at = static_cast<std::size_t>((b * kKvHeads + j) * got_capacity * kHeadDim + at);
          const auto theirs_at = static_cast<std::size_t>((b * kKvHeads + j) * want_capacity * kHeadDim + at);
          for (const auto& [mine, theirs] : {std::pair{got.present_key[ours_at], expected.present_key[theirs_at]},
                                             std::pair{got.present_value[ours_at], expected.present_value[theirs_at]}}) {
            worst = std::max(worst, static_cast<double>(std::fabs(mine - fp16_to_float(float_to_fp16(theirs)))) / std::max(1.0f, std::fabs(theirs)));
          }
        }
      }
      EXPECT_LT(worst, 1e-3) << "sequence " << b;  // equal, or a half-float step apart where the preamble's rounding differs
    }
    ++checked;
  }
  EXPECT_EQ(checked, steps.size());
}

TEST(AttentionOp, LengthsOutsideTheCacheAreErrorsNamingTheOp) {
  test::TempDir dir;
  OnnxEnvironment env(1);
  const OnnxSession ours(env, attention_model(dir.path(), true));
  const std::vector<std::pair<Step, std::string>> steps = {
      {{1, 1, 16, {40}, 16, true}, "40 cached positions"},
      {{1, 1, 16, {-5}, 3, true}, "-5 cached positions"},
      {{2, 1, 16, {3, 16}, 16, true}, "16 cached positions"},
      {{1, 1, 16, {3}, 2000000000, true}, "total_sequence_length 2000000000"},  // would size the present cache
      {{1, 4, 16, {3}, 0, true}, "total_sequence_length 0"},                    // a prompt: checked before ONNX Runtime's kernel
      {{1, 5, 16, {40}, 5, true}, "seqlens_k 40 of sequence 0"},                // a first prompt whose length ONNX Runtime would read by
      {{1, 3, 16, {1}, 8, true}, "seqlens_k 1 of sequence 0"},                  // a later turn shorter than its new tokens
  };
  std::size_t checked = 0;
  for (const auto& [step, message] : steps) {
    try {
      run_step(ours, step, 1);
      ADD_FAILURE() << "ran a step that should fail with " << message;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("GroupQueryAttention"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      ++checked;
    }
  }
  EXPECT_EQ(checked, steps.size());
}

}  // namespace
}  // namespace q3vl
