// The MoE block on its own: one sparse layer of a random MoE checkpoint exported with fp32
// experts (com.microsoft.MoE) and with int8 / int4 experts (com.microsoft.QMoE), run on the same
// input. Quantization moves the output by well under a percent (int8) or a few percent (int4);
// a wrong packing (nibble order, row padding, scale layout, gate/up interleaving) moves it by
// its whole size. The fp32 block's agreement with HF is in tests/golden/moe_golden_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "export/moe_mlp.h"
#include "model/checkpoint.h"
#include "model/random_checkpoint.h"
#include "ort/onnx_session.h"
#include "support/golden.h"
#include "support/test_support.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

// Layer `layer`'s MLP block alone (input: the normed hidden state [1, T, H]) in `format`.
std::vector<float> run_mlp_block(const Checkpoint& ckpt, std::int64_t layer, WeightFormat format, const fs::path& dir,
                                 std::vector<float> x) {
  const TextConfig& t = ckpt.config().text;
  const std::string model = "mlp_" + to_string(format) + ".onnx";
  {
    graph::ExternalDataWriter external(dir / (model + ".data"), model + ".data");
    graph::GraphBuilder g("moe_block", {}, &external);
    WeightWriter weights(g, ckpt);
    LinearOptions linear;
    linear.format = format;
    linear.block_size = 16;
    const std::string in = g.input("x", graph::kFloat, {std::int64_t{1}, std::string("tokens"), t.hidden_size});
    const decoder::MoeMlp mlp(g, t, /*router_outputs=*/false);
    g.output(mlp({g, weights, t, linear, layer}, in), "y", graph::kFloat, {std::int64_t{1}, std::string("tokens"), t.hidden_size});
    external.close();
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

TEST(MoeExport, QuantizedExpertsStayCloseToFloatExperts) {
  test::TempDir dir;
  RandomCheckpointOptions options;
  options.tokenizer_dir = test::fake_tokenizer_dir(dir);
  options.show_progress = false;
  options.seed = 3;
  write_random_checkpoint(random_checkpoint_config("moe"), dir / "checkpoint", options);
  const Checkpoint ckpt = Checkpoint::open(dir / "checkpoint");
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
  // A dense layer of the same checkpoint (mlp_only_layers) goes through the dense MLP, any format.
  ASSERT_FALSE(t.sparse_layer(2));
  const std::vector<float> dense = run_mlp_block(ckpt, 2, WeightFormat::F32, dir.path(), x);
  const double dense_error = test::compare(run_mlp_block(ckpt, 2, WeightFormat::Int8, dir.path(), x), dense).relative();
  std::printf("[ dense block int8 ] relative error against fp32 %.3g\n", dense_error);
  EXPECT_LT(dense_error, 0.02);
}

}  // namespace
}  // namespace q3vl
