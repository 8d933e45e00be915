// The MoE block on its own: one sparse layer of a random MoE checkpoint exported with fp32
// experts (com.microsoft.MoE) and with int8 / int4 experts (com.microsoft.QMoE), run on the same
// input. Quantization moves the output by well under a percent (int8) or a few percent (int4);
// a wrong packing (nibble order, row padding, scale layout, gate/up interleaving) moves it by
// its whole size. The fp32 block's agreement with HF is in tests/golden/moe_golden_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>

#include "export/kernel_graph.h"
#include "export/moe_mlp.h"
#include "model/checkpoint.h"
#include "model/random_checkpoint.h"
#include "ort/onnx_session.h"
#include "q3vl/error.h"
#include "support/golden.h"
#include "support/graph_edits.h"
#include "support/test_support.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

// Layer `layer`'s MLP block alone (input: the normed hidden state [1, T, H]) in `format`.
// With `expert_kernel`, the graph's QMoE nodes are replaced by q3vl's Int4Experts (text.kernels.onnx's rewrite).
// `edit`, when given, changes the graph last (hostile-graph tests).
std::vector<float> run_mlp_block(const Checkpoint& ckpt, std::int64_t layer, WeightFormat format, const fs::path& dir,
                                 std::vector<float> x, std::int64_t block_size = 16, bool expert_kernel = false,
                                 const std::function<void(onnx::ModelProto&)>& edit = {}) {
  const TextConfig& t = ckpt.config().text;
  const std::string model = "mlp_" + to_string(format) + "_" + std::to_string(block_size) + (expert_kernel ? "_q3vl" : "") + ".onnx";
  {
    graph::ExternalDataWriter external(dir / (model + ".data"), model + ".data");
    graph::GraphBuilder g("moe_block", {}, &external);
    WeightWriter weights(g, ckpt);
    LinearOptions linear;
    linear.format = format;
    linear.block_size = block_size;
    const std::string in = g.input("x", graph::kFloat, {std::int64_t{1}, std::string("tokens"), t.hidden_size});
    const decoder::MoeMlp mlp(g, t, /*router_outputs=*/false);
    g.output(mlp({g, weights, t, linear, layer}, in), "y", graph::kFloat, {std::int64_t{1}, std::string("tokens"), t.hidden_size});
    external.close();
    if (expert_kernel && use_q3vl_kernels(g.model()).experts != 1) throw Error("expected one QMoE node to replace");
    if (edit) edit(g.model());
    g.save(dir / model);
  }
  OnnxEnvironment env;
  const OnnxSession session(env, dir / model);
  std::vector<Ort::Value> inputs;
  inputs.push_back(tensor_view(x, {1, static_cast<std::int64_t>(x.size()) / t.hidden_size, t.hidden_size}));
  const std::vector<Ort::Value> out = session.run({"x"}, inputs, {"y"});
  const float* y = out[0].GetTensorData<float>();
  return {y, y + x.size()};
}

// make-tiny's `moe` preset written into dir/checkpoint.
Checkpoint random_moe_checkpoint(const test::TempDir& dir, std::uint64_t seed) {
  RandomCheckpointOptions options;
  options.tokenizer_dir = test::fake_tokenizer_dir(dir);
  options.show_progress = false;
  options.seed = seed;
  write_random_checkpoint(random_checkpoint_config("moe"), dir / "checkpoint", options);
  return Checkpoint::open(dir / "checkpoint");
}

TEST(MoeExport, QuantizedExpertsStayCloseToFloatExperts) {
  test::TempDir dir;
  const Checkpoint ckpt = random_moe_checkpoint(dir, 3);
  const TextConfig& t = ckpt.config().text;
  ASSERT_TRUE(t.sparse_layer(0));
  // 16 tokens of a smooth, sign-changing pattern (every expert gets some).
  std::vector<float> x(static_cast<std::size_t>(16 * t.hidden_size));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)) * 2.0);
  const std::vector<float> reference = run_mlp_block(ckpt, 0, WeightFormat::F32, dir.path(), x);
  for (const auto& [format, tolerance] : {std::pair{WeightFormat::Int8, 0.02}, std::pair{WeightFormat::Int4, 0.25}}) {
    const double error = test::compare(run_mlp_block(ckpt, 0, format, dir.path(), x), reference).relative();
    std::printf("[ moe block %s ] relative error against fp32 experts %.3g\n", to_string(format).c_str(), error);
    EXPECT_LT(error, tolerance) << to_string(format);
  }
  // int4 experts in blocks of 32 through q3vl's kernel (int8 activations, the vector kernels: H and I
  // are multiples of 32) stay as close to fp32 as ONNX Runtime's QMoE (float activations) does.
  const double qmoe = test::compare(run_mlp_block(ckpt, 0, WeightFormat::Int4, dir.path(), x, 32), reference).relative();
  const std::vector<float> ours_out = run_mlp_block(ckpt, 0, WeightFormat::Int4, dir.path(), x, 32, /*expert_kernel=*/true);
  const double ours = test::compare(ours_out, reference).relative();
  const double apart = test::compare(ours_out, run_mlp_block(ckpt, 0, WeightFormat::Int4, dir.path(), x, 32)).relative();
  std::printf("[ moe block int4/32 ] relative error against fp32 experts: QMoE %.3g, q3vl kernel %.3g (%.3g apart)\n", qmoe,
              ours, apart);
  EXPECT_LT(ours, 0.25);
  EXPECT_LT(ours, qmoe * 1.5 + 0.01);
  EXPECT_LT(apart, 0.05);
  // A dense layer of the same checkpoint (mlp_only_layers) goes through the dense MLP, any format.
  ASSERT_FALSE(t.sparse_layer(2));
  const std::vector<float> dense = run_mlp_block(ckpt, 2, WeightFormat::F32, dir.path(), x);
  const double dense_error = test::compare(run_mlp_block(ckpt, 2, WeightFormat::Int8, dir.path(), x), dense).relative();
  std::printf("[ dense block int8 ] relative error against fp32 %.3g\n", dense_error);
  EXPECT_LT(dense_error, 0.02);
}

// A text.kernels.onnx whose Int4Experts node disagrees with its tensors (block size, k) fails the run
// with an error naming the op and what is wrong: no crash, no read past the scales.
TEST(MoeExport, AnInt4ExpertsNodeThatDisagreesWithItsTensorsIsAnError) {
  test::TempDir dir;
  const Checkpoint ckpt = random_moe_checkpoint(dir, 0);
  const std::vector<float> x(static_cast<std::size_t>(4 * ckpt.config().text.hidden_size), 0.5f);
  const auto set = [](const std::string& name, std::int64_t value) { return test::set_attribute("Int4Experts", name, value); };
  const std::vector<std::pair<test::GraphEdit, std::string>> cases = {
      {set("block_size", 16), "Int4Experts: gate_up weights and scales do not describe"},
      {set("k", 0), "int4 experts: k = 0 of"},
      {set("k", 99), "int4 experts: k = 99 of"}};
  EXPECT_EQ(test::expect_errors(cases,
                                [&](const test::GraphEdit& edit) {
                                  run_mlp_block(ckpt, 0, WeightFormat::Int4, dir.path(), x, 32, /*expert_kernel=*/true, edit);
                                }),
            cases.size());
}

}  // namespace
}  // namespace q3vl
