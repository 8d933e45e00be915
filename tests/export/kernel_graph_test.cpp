// text.kernels.onnx's rewrite on dense layers (export/kernel_graph.h): which MatMulNBits nodes
// become q3vl's Int4MatMul (4-bit, symmetric, float scales, accuracy level 4) and which stay, and
// that the rewritten graph runs: its output is as close to the float layers as ONNX Runtime's
// MatMulNBits is (both quantize activations to int8), with a symbolic token count flowing through
// the op into an ONNX Runtime op after it. Hostile attributes fail with an error naming the op.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>

#include "export/kernel_graph.h"
#include "export/weights.h"
#include "model/checkpoint.h"
#include "model/random_checkpoint.h"
#include "model/tensor_names.h"
#include "ort/onnx_session.h"
#include "package/format.h"
#include "q3vl/error.h"
#include "support/golden.h"
#include "support/graph_edits.h"
#include "support/test_support.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

struct TwoLayers {
  LinearOptions first, second;  // up [H -> I], then down [I -> H]
};

// A fresh model file name in the test's directory, "PREFIX_N.onnx".
std::string next_model_name(const char* prefix) {
  static int count = 0;
  std::string model = prefix;  // appended, not "..." + to_string(): GCC 12 warns (-Wrestrict) on that
  model += "_" + std::to_string(count++) + ".onnx";
  return model;
}

// Runs the saved `model` (input x [1, tokens, H], output y of x's size) on `x`.
std::vector<float> run_saved(const fs::path& model, const std::vector<float>& x, std::int64_t H) {
  OnnxEnvironment env;
  const OnnxSession session(env, model);
  std::vector<Ort::Value> inputs;
  std::vector<float> input = x;
  inputs.push_back(tensor_view(input, {1, static_cast<std::int64_t>(x.size()) / H, H}));
  const std::vector<Ort::Value> out = session.run({"x"}, inputs, {"y"});
  const float* y = out[0].GetTensorData<float>();
  return {y, y + x.size()};
}

// x [1, tokens, H] -> up_proj -> down_proj of layer 0, each in its own format; with `kernels`, after
// q3vl's rewrite, which must replace `expect_replaced` nodes. Runs it on `x`.
std::vector<float> run_two_layers(const Checkpoint& ckpt, const TwoLayers& layers, const fs::path& dir, const std::vector<float>& x,
                                  bool kernels, std::int64_t expect_replaced = 0,
                                  const std::function<void(onnx::ModelProto&)>& edit = {}, bool half_scales = false,
                                  KernelWidths widths = {}) {
  const std::string model = next_model_name("layers");
  const std::int64_t H = ckpt.config().text.hidden_size;
  {
    graph::ExternalDataWriter external(dir / (model + ".data"), model + ".data");
    graph::GraphBuilder g("two_layers", {}, &external);
    WeightWriter weights(g, ckpt);
    const std::string in = g.input("x", graph::kFloat, {std::int64_t{1}, std::string("tokens"), H});
    const std::string up = weights.linear(in, names::text_layer(0, "mlp.up_proj.weight"), "", layers.first, "up");
    g.output(weights.linear(up, names::text_layer(0, "mlp.down_proj.weight"), "", layers.second, "down"), "y", graph::kFloat,
             {std::int64_t{1}, std::string("tokens"), H});
    external.close();
    if (kernels) {
      const KernelRewrite done = use_q3vl_kernels(g.model(), widths);
      if (done.matmuls != expect_replaced || done.experts != 0) throw Error("replaced another number of MatMulNBits nodes");
      if (half_scales) {
        graph::ExternalDataWriter halves(dir / (model + ".half"), model + ".half");
        if (use_half_scales(g.model(), dir, halves) != expect_replaced) throw Error("halved another number of scale tensors");
        halves.close();
      }
    }
    if (edit) edit(g.model());
    g.save(dir / model);
  }
  return run_saved(dir / model, x, H);
}

LinearOptions linear(WeightFormat format, std::int64_t accuracy_level = 4, bool symmetric = true) {
  LinearOptions o;
  o.format = format;
  o.block_size = 32;
  o.accuracy_level = accuracy_level;
  o.symmetric = symmetric;
  return o;
}

Checkpoint tiny_checkpoint(const test::TempDir& dir) {
  RandomCheckpointOptions options;
  options.tokenizer_dir = test::fake_tokenizer_dir(dir);
  options.show_progress = false;
  options.seed = 5;
  write_random_checkpoint(random_checkpoint_config("tiny"), dir / "checkpoint", options);
  return Checkpoint::open(dir / "checkpoint");
}

std::vector<float> smooth_input(std::int64_t tokens, std::int64_t H) {
  std::vector<float> x(static_cast<std::size_t>(tokens * H));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(std::sin(0.29 * static_cast<double>(i)) * 1.5);
  return x;
}

TEST(KernelGraph, DenseInt4LayersRunOnQ3vlsKernelAsCloseToFloatAsMatMulNBits) {
  test::TempDir dir;
  const Checkpoint ckpt = tiny_checkpoint(dir);
  const std::int64_t H = ckpt.config().text.hidden_size;
  std::size_t checked = 0;
  for (const std::int64_t tokens : {std::int64_t{1}, std::int64_t{9}}) {
    const std::vector<float> x = smooth_input(tokens, H);
    const TwoLayers float_layers{linear(WeightFormat::F32), linear(WeightFormat::F32)};
    const std::vector<float> reference = run_two_layers(ckpt, float_layers, dir.path(), x, false);
    // Both int4 (level 4): both replaced. Then only the first: the second, ONNX Runtime's MatMulNBits
    // at accuracy level 1, infers its input's shape from Int4MatMul's output (a symbolic dimension).
    for (const auto& [layers, replaced] : {std::pair{TwoLayers{linear(WeightFormat::Int4), linear(WeightFormat::Int4)}, 2},
                                           std::pair{TwoLayers{linear(WeightFormat::Int4), linear(WeightFormat::Int4, 1)}, 1}}) {
      const std::vector<float> ort = run_two_layers(ckpt, layers, dir.path(), x, false);
      const double ort_error = test::compare(ort, reference).relative();
      std::vector<float> with_float_scales;
      for (const bool half : {false, true}) {  // float32 scales, and text.kernels.onnx's float16 copies
        const std::vector<float> ours = run_two_layers(ckpt, layers, dir.path(), x, true, replaced, {}, half);
        // A bf16 checkpoint's block scales (extreme / 8) are exact in float16: the same outputs.
        if (half) {
          EXPECT_EQ(ours, with_float_scales);
        }
        with_float_scales = ours;
        const double our_error = test::compare(ours, reference).relative();
        const double apart = test::compare(ours, ort).relative();
        std::printf("[ int4 layers, %lld tokens, %d on q3vl's kernel, %s scales ] against fp32: MatMulNBits %.3g, q3vl %.3g (%.3g apart)\n",
                    static_cast<long long>(tokens), replaced, half ? "float16" : "float32", ort_error, our_error, apart);
        EXPECT_LT(our_error, 0.2);
        EXPECT_LT(our_error, ort_error * 1.5 + 0.01);
        EXPECT_LT(apart, 1e-5);
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 8u);
}

// vision.kernels.onnx's rewrite: int8 MatMulNBits (level 4) on q3vl's Int8MatMul, as close to the
// float layers as MatMulNBits, for one token (a panel of one), a few and more than a panel pass.
TEST(KernelGraph, DenseInt8LayersRunOnQ3vlsKernelAsCloseToFloatAsMatMulNBits) {
  test::TempDir dir;
  const Checkpoint ckpt = tiny_checkpoint(dir);
  const std::int64_t H = ckpt.config().text.hidden_size;
  const TwoLayers int8_layers{linear(WeightFormat::Int8), linear(WeightFormat::Int8)};
  const KernelWidths int8_only{.int4 = false, .int8 = true};
  std::size_t checked = 0;
  for (const std::int64_t tokens : {std::int64_t{1}, std::int64_t{9}, std::int64_t{300}}) {
    const std::vector<float> x = smooth_input(tokens, H);
    const std::vector<float> reference = run_two_layers(ckpt, {linear(WeightFormat::F32), linear(WeightFormat::F32)}, dir.path(), x, false);
    const std::vector<float> ort = run_two_layers(ckpt, int8_layers, dir.path(), x, false);
    const std::vector<float> ours = run_two_layers(ckpt, int8_layers, dir.path(), x, true, 2, {}, false, int8_only);
    const double ort_error = test::compare(ort, reference).relative();
    const double our_error = test::compare(ours, reference).relative();
    const double apart = test::compare(ours, ort).relative();
    std::printf("[ int8 layers, %lld tokens, on q3vl's kernel ] against fp32: MatMulNBits %.3g, q3vl %.3g (%.3g apart)\n",
                static_cast<long long>(tokens), ort_error, our_error, apart);
    EXPECT_LT(our_error, 0.02);
    EXPECT_LT(our_error, ort_error * 1.5 + 0.002);
    EXPECT_LT(apart, 1e-5);  // the same int8 arithmetic as MatMulNBits at accuracy level 4
    ++checked;
  }
  EXPECT_EQ(checked, 3u);
  // The decoder's rewrite (int4 only) leaves int8 layers to ONNX Runtime.
  EXPECT_NO_THROW(run_two_layers(ckpt, int8_layers, dir.path(), smooth_input(2, H), true, 0));
}

TEST(KernelGraph, OnlyInt4SymmetricLevel4LayersAreReplaced) {
  test::TempDir dir;
  const Checkpoint ckpt = tiny_checkpoint(dir);
  const std::vector<float> x = smooth_input(3, ckpt.config().text.hidden_size);
  // int8 weights, int4 with zero points, int4 with float activations asked for: all stay.
  for (const LinearOptions& kept : {linear(WeightFormat::Int8), linear(WeightFormat::Int4, 4, false), linear(WeightFormat::Int4, 0)}) {
    EXPECT_NO_THROW(run_two_layers(ckpt, TwoLayers{kept, linear(WeightFormat::Int4)}, dir.path(), x, true, 1));
  }
  EXPECT_NO_THROW(run_two_layers(ckpt, TwoLayers{linear(WeightFormat::F32), linear(WeightFormat::Int8)}, dir.path(), x, true, 0));
}

// An input whose dimensions shape inference cannot name (after a Reshape to a shape given at run
// time) keeps them unknown through Int4MatMul: a Slice after it infers its shape without taking an
// unknown dimension for the value -1 (ONNX Runtime asserted on that and aborted the process).
TEST(KernelGraph, UnnamedUnknownDimensionsStayUnknownThroughInt4MatMul) {
  test::TempDir dir;
  const Checkpoint ckpt = tiny_checkpoint(dir);
  const std::int64_t H = ckpt.config().text.hidden_size, I = ckpt.config().text.intermediate_size;
  const fs::path model = dir / "reshaped.onnx";
  {
    graph::ExternalDataWriter external(dir / "reshaped.onnx.data", "reshaped.onnx.data");
    graph::GraphBuilder g("reshaped", {}, &external);
    WeightWriter weights(g, ckpt);
    const std::string x = g.input("x", graph::kFloat, {std::int64_t{1}, std::string("tokens"), H});
    const std::string shape = g.input("shape", graph::kInt64, {std::int64_t{3}});
    const std::string reshaped = g.op("Reshape", {x, shape});
    const std::string up = weights.linear(reshaped, names::text_layer(0, "mlp.up_proj.weight"), "", linear(WeightFormat::Int4), "up");
    const std::string sliced = g.op("Slice", {up, g.constant_i64({0}), g.constant_i64({2}), g.constant_i64({1})});
    g.output(sliced, "y", graph::kFloat, {std::int64_t{1}, std::string("kept"), I});
    external.close();
    ASSERT_EQ(use_q3vl_kernels(g.model()).matmuls, 1);
    g.save(model);
  }
  OnnxEnvironment env;
  const OnnxSession session(env, model);
  std::vector<float> x = smooth_input(3, H);
  std::vector<std::int64_t> shape = {1, 3, H};
  std::vector<Ort::Value> inputs;
  inputs.push_back(tensor_view(x, {1, 3, H}));
  inputs.push_back(tensor_view(shape, {3}));
  const std::vector<Ort::Value> out = session.run({"x", "shape"}, inputs, {"y"});
  EXPECT_EQ(out[0].GetTensorTypeAndShapeInfo().GetShape(), (std::vector<std::int64_t>{1, 2, I}));
}

// Edits that make an Int4MatMul or Int8MatMul node (`op`) disagree with its tensors, each with the
// error it must give: `kernel` is the kernel's own prefix ("int4 matmul"), `scales` the op's
// message for scales of a type it does not read (its input takes any type; the kernel checks).
std::vector<std::pair<test::GraphEdit, std::string>> disagreeing_nodes(const std::string& op, const std::string& kernel,
                                                                       const std::string& scales) {
  const auto set = [&](const std::string& name, std::int64_t value) { return test::set_attribute(op, name, value); };
  const test::GraphEdit int32_scales = [op](onnx::ModelProto& model) {
    for (const onnx::NodeProto& node : model.graph().node()) {
      if (node.op_type() != op) continue;
      for (onnx::TensorProto& t : *model.mutable_graph()->mutable_initializer()) {
        if (t.name() == node.input(2)) t.set_data_type(onnx::TensorProto::INT32);  // same 4 bytes per value
      }
    }
  };
  return {{set("block_size", 16), op + ": B ["},
          {set("block_size", 48), kernel + ":"},
          {set("N", 7), op + ": B ["},
          {set("K", 1 << 20), op + ": B ["},
          {int32_scales, op + ": scales must be " + scales}};
}

TEST(KernelGraph, AnInt4MatMulNodeThatDisagreesWithItsTensorsIsAnError) {
  test::TempDir dir;
  const Checkpoint ckpt = tiny_checkpoint(dir);
  const std::vector<float> x = smooth_input(2, ckpt.config().text.hidden_size);
  auto cases = disagreeing_nodes("Int4MatMul", "int4 matmul", "float or float16");
  // A SwiGLU down projection reads [..., 2K]; these layers' inputs are [..., K].
  cases.push_back({test::add_attribute("Int4MatMul", "swiglu", 1), "Int4MatMul: A [1, 2, "});
  cases.push_back({test::add_attribute("Int4MatMul", "swiglu", 2), "Int4MatMul: swiglu = 2"});
  EXPECT_EQ(test::expect_errors(cases,
                                [&](const test::GraphEdit& edit) {
                                  run_two_layers(ckpt, TwoLayers{linear(WeightFormat::Int4), linear(WeightFormat::Int4)}, dir.path(), x,
                                                 true, 2, edit);
                                }),
            cases.size());
}

// The same for Int8MatMul (vision.kernels.onnx's op), over six tokens (panels).
TEST(KernelGraph, AnInt8MatMulNodeThatDisagreesWithItsTensorsIsAnError) {
  test::TempDir dir;
  const Checkpoint ckpt = tiny_checkpoint(dir);
  const std::vector<float> x = smooth_input(6, ckpt.config().text.hidden_size);
  auto cases = disagreeing_nodes("Int8MatMul", "int8 matmul", "float");
  cases.push_back({test::add_attribute("Int8MatMul", "swiglu", 1), "Int8MatMul: swiglu = 1 (only Int4MatMul takes it"});
  // Rows past B's (a q, k or v part of a qkv projection reads rows first_row .. first_row + N).
  cases.push_back({test::add_attribute("Int8MatMul", "first_row", 1), "from row 1"});
  cases.push_back({test::add_attribute("Int8MatMul", "first_row", -2), "Int8MatMul: first_row = -2"});
  // K shrunk within B's last block: B still describes it (rows padded to whole blocks), so A's width
  // must be what refuses it, before any read.
  const std::int64_t shrunk = ckpt.config().text.hidden_size - 8;
  cases.push_back({test::set_attribute("Int8MatMul", "K", shrunk), "does not end in K=" + std::to_string(shrunk)});
  const TwoLayers int8_layers{linear(WeightFormat::Int8), linear(WeightFormat::Int8)};
  EXPECT_EQ(test::expect_errors(cases,
                                [&](const test::GraphEdit& edit) {
                                  run_two_layers(ckpt, int8_layers, dir.path(), x, true, 2, edit, false, {.int4 = false, .int8 = true});
                                }),
            cases.size());
}

// The vision encoder's MLP: x [1, tokens, H] -> int8 up projection -> FastGelu with a bias ->
// int8 down projection; with `kernels`, after q3vl's rewrite (then `edit`). Returns y, and how many
// FastGelu nodes and gelu = 1 matmuls the saved graph has.
struct GeluMlpRun {
  std::vector<float> y;
  int fast_gelus = 0, gelu_matmuls = 0, patch_mlps = 0;
};

GeluMlpRun run_gelu_mlp(const Checkpoint& ckpt, const fs::path& dir, const std::vector<float>& x, bool kernels,
                        const test::GraphEdit& edit = {}) {
  const std::string model = next_model_name("gelu_mlp");
  const std::int64_t H = ckpt.config().text.hidden_size, I = ckpt.config().text.intermediate_size;
  GeluMlpRun run;
  {
    graph::ExternalDataWriter external(dir / (model + ".data"), model + ".data");
    graph::GraphBuilder g("gelu_mlp", {}, &external);
    WeightWriter weights(g, ckpt);
    const std::string in = g.input("x", graph::kFloat, {std::int64_t{1}, std::string("tokens"), H});
    const std::string up = weights.linear(in, names::text_layer(0, "mlp.up_proj.weight"), "", linear(WeightFormat::Int8), "up");
    std::vector<float> bias_values(static_cast<std::size_t>(I));
    for (std::size_t i = 0; i < bias_values.size(); ++i) bias_values[i] = static_cast<float>(std::cos(0.7 * static_cast<double>(i)) * 0.5);
    const std::string bias = g.initializer("up_bias", {I}, bias_values);
    const std::string act = g.op("FastGelu", {up, bias}, {}, graph::kMicrosoftDomain);
    g.output(weights.linear(act, names::text_layer(0, "mlp.down_proj.weight"), "", linear(WeightFormat::Int8), "down"), "y",
             graph::kFloat, {std::int64_t{1}, std::string("tokens"), H});
    external.close();
    if (kernels) {
      const KernelRewrite done = use_q3vl_kernels(g.model(), {.int4 = false, .int8 = true});
      if (done.matmuls != 2 || done.gelu != 1 || done.patch_mlp != 1) throw Error("expected two matmuls replaced, one FastGelu folded, one PatchMlp");
    }
    if (edit) edit(g.model());
    for (const onnx::NodeProto& node : g.model().graph().node()) {
      run.fast_gelus += node.op_type() == "FastGelu";
      for (const onnx::AttributeProto& a : node.attribute()) run.gelu_matmuls += a.name() == "gelu" && a.i() == 1;
      run.patch_mlps += node.op_type() == package::kPatchMlpOp;
    }
    g.save(dir / model);
  }
  run.y = run_saved(dir / model, x, H);
  return run;
}

// vision.kernels.onnx folds the MLP's FastGelu (which allocates a scratch copy of its input) into
// the up projection, and that and the down projection into one PatchMlp (256 rows at a time): the
// same outputs as ONNX Runtime's MatMulNBits, FastGelu, MatMulNBits.
TEST(KernelGraph, AFastGeluWithBiasFoldsIntoOnePatchMlp) {
  test::TempDir dir;
  const Checkpoint ckpt = tiny_checkpoint(dir);
  std::size_t checked = 0;
  for (const std::int64_t tokens : {std::int64_t{1}, std::int64_t{6}, std::int64_t{40}}) {
    const std::vector<float> x = smooth_input(tokens, ckpt.config().text.hidden_size);
    const GeluMlpRun ort = run_gelu_mlp(ckpt, dir.path(), x, false);
    const GeluMlpRun ours = run_gelu_mlp(ckpt, dir.path(), x, true);
    EXPECT_EQ(ort.fast_gelus, 1);
    EXPECT_EQ(ours.fast_gelus, 0);
    EXPECT_EQ(ours.gelu_matmuls, 0);
    EXPECT_EQ(ours.patch_mlps, 1);
    const double apart = test::compare(ours.y, ort.y).relative();
    std::printf("[ int8 MLP with a tanh GELU, %lld tokens ] fused against ONNX Runtime's nodes: %.3g apart\n",
                static_cast<long long>(tokens), apart);
    EXPECT_LT(apart, 1e-5);
    ++checked;
  }
  EXPECT_EQ(checked, 3u);
}

// A FastGelu whose bias is not a float initializer of one value per output (here a graph input)
// stays ONNX Runtime's node.
TEST(KernelGraph, AFastGeluWithAnotherBiasStays) {
  test::TempDir dir;
  const Checkpoint ckpt = tiny_checkpoint(dir);
  const std::int64_t H = ckpt.config().text.hidden_size, I = ckpt.config().text.intermediate_size;
  graph::ExternalDataWriter external(dir / "kept.onnx.data", "kept.onnx.data");
  graph::GraphBuilder g("kept", {}, &external);
  WeightWriter weights(g, ckpt);
  const std::string in = g.input("x", graph::kFloat, {std::int64_t{1}, std::string("tokens"), H});
  const std::string bias = g.input("bias", graph::kFloat, {I});
  const std::string up = weights.linear(in, names::text_layer(0, "mlp.up_proj.weight"), "", linear(WeightFormat::Int8), "up");
  g.output(g.op("FastGelu", {up, bias}, {}, graph::kMicrosoftDomain), "y", graph::kFloat, {std::int64_t{1}, std::string("tokens"), I});
  external.close();
  const KernelRewrite done = use_q3vl_kernels(g.model(), {.int4 = false, .int8 = true});
  EXPECT_EQ(done.matmuls, 1);
  EXPECT_EQ(done.gelu, 0);
  int fast_gelus = 0;
  for (const onnx::NodeProto& node : g.model().graph().node()) fast_gelus += node.op_type() == "FastGelu";
  EXPECT_EQ(fast_gelus, 1);
}

TEST(KernelGraph, AShapeOrBiasThePatchMlpCannotTakeIsAnError) {
  test::TempDir dir;
  const Checkpoint ckpt = tiny_checkpoint(dir);
  const std::vector<float> x = smooth_input(6, ckpt.config().text.hidden_size);
  const test::GraphEdit short_bias = [](onnx::ModelProto& model) {  // the up projection reads 3 biases
    onnx::TensorProto* t = model.mutable_graph()->add_initializer();
    t->set_name("short_bias");
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(3);
    for (int i = 0; i < 3; ++i) t->add_float_data(0.5f);
    for (onnx::NodeProto& node : *model.mutable_graph()->mutable_node()) {
      if (node.op_type() == package::kPatchMlpOp) node.set_input(3, "short_bias");
    }
  };
  std::vector<std::pair<test::GraphEdit, std::string>> cases = {
      {test::set_attribute("PatchMlp", "N", 5), "PatchMlp: up B"},
      {test::set_attribute("PatchMlp", "block_size", 0), "PatchMlp: up B"},
      {short_bias, "PatchMlp: the up bias must be"},
      // K shrunk within the up projection's last block: the down projection's rows then disagree.
      {test::set_attribute("PatchMlp", "K", ckpt.config().text.hidden_size - 8), "PatchMlp: down B"},
  };
  EXPECT_EQ(test::expect_errors(cases, [&](const test::GraphEdit& edit) { run_gelu_mlp(ckpt, dir.path(), x, true, edit); }), cases.size());
}

}  // namespace
}  // namespace q3vl
