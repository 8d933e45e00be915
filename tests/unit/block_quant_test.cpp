#include <gtest/gtest.h>

#include <cmath>

#include "export/weights.h"
#include "graph/graph_builder.h"
#include "q3vl/error.h"
#include "quant/block_quant.h"
#include "ort/onnx_session.h"
#include "support/test_support.h"

namespace q3vl {
namespace {

std::vector<float> wave(std::size_t n, float phase) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::sin(static_cast<float>(i) * 0.731f + phase) * (1.0f + static_cast<float>(i % 7));
  return v;
}

// Rounding costs at most half a step; symmetric blocks map the extreme to -2^(bits-1) exactly, so a
// value of opposite sign and similar size is clamped at +2^(bits-1)-1 and may be off by one step.
TEST(BlockQuant, RoundTripErrorIsWithinOneStep) {
  constexpr std::int64_t N = 5;
  constexpr std::int64_t K = 80;  // not a multiple of the block: exercises the padded last block
  const std::vector<float> w = wave(N * K, 0.3f);
  for (int bits : {4, 8}) {
    for (bool symmetric : {true, false}) {
      const BlockQuantOptions o{bits, 32, symmetric};
      const QuantizedMatrix q = quantize_blocks(w, N, K, o);
      EXPECT_EQ(q.blocks_per_row, 3);
      const std::vector<float> back = dequantize_blocks(q, o);
      for (std::int64_t n = 0; n < N; ++n) {
        for (std::int64_t k = 0; k < K; ++k) {
          const float scale = std::fabs(q.scales[static_cast<std::size_t>(n * q.blocks_per_row + k / 32)]);
          EXPECT_LE(std::fabs(back[static_cast<std::size_t>(n * K + k)] - w[static_cast<std::size_t>(n * K + k)]),
                    (symmetric ? 1.0f : 0.5f) * scale + 1e-6f)
              << bits << " " << symmetric << " " << n << "," << k;
        }
      }
    }
  }
  EXPECT_THROW(validate(BlockQuantOptions{3, 32, true}), Error);
  EXPECT_THROW(validate(BlockQuantOptions{4, 48, true}), Error);
}

// ONNX Runtime's MatMulNBits, fed our packing, computes x · dequant(W)ᵀ: proves the byte layout.
TEST(BlockQuant, OnnxRuntimeMatMulNBitsReadsOurLayout) {
  constexpr std::int64_t N = 6;
  constexpr std::int64_t K = 96;
  const std::vector<float> w = wave(N * K, 1.1f);
  const std::vector<float> x = wave(2 * K, 2.0f);
  for (int bits : {4, 8}) {
    for (bool symmetric : {true, false}) {
      const BlockQuantOptions o{bits, 32, symmetric};
      const QuantizedMatrix q = quantize_blocks(w, N, K, o);
      test::TempDir dir;
      {
        graph::GraphBuilder g("nbits");
        std::vector<std::string> inputs = {g.input("x", graph::kFloat, {2, K}),
                                           g.initializer("b", graph::kUInt8, {N, q.blocks_per_row, 32 * bits / 8}, q.packed),
                                           g.initializer("s", {N, q.blocks_per_row}, q.scales)};
        if (!symmetric) {
          inputs.push_back(g.initializer("zp", graph::kUInt8, {N, static_cast<std::int64_t>(q.zero_points.size()) / N},
                                         q.zero_points));
        }
        const std::string y = g.op("MatMulNBits", inputs,
                                   {{"K", K}, {"N", N}, {"bits", std::int64_t{bits}}, {"block_size", std::int64_t{32}},
                                    {"accuracy_level", std::int64_t{0}}},
                                   graph::kMicrosoftDomain);
        g.output(y, "y", graph::kFloat, {2, N});
        g.save(dir / "m.onnx");
      }
      OnnxEnvironment env;
      OnnxSession session(env, dir / "m.onnx");
      std::vector<float> x_copy = x;
      std::vector<Ort::Value> in;
      in.push_back(tensor_view(x_copy, {2, K}));
      auto out = session.run({"x"}, in, {"y"});
      const float* y = out[0].GetTensorData<float>();
      const std::vector<float> wq = dequantize_blocks(q, o);
      for (std::int64_t r = 0; r < 2; ++r) {
        for (std::int64_t n = 0; n < N; ++n) {
          double expected = 0;
          for (std::int64_t k = 0; k < K; ++k) expected += static_cast<double>(x[static_cast<std::size_t>(r * K + k)]) * wq[static_cast<std::size_t>(n * K + k)];
          EXPECT_NEAR(y[r * N + n], expected, 1e-3 * (1 + std::fabs(expected))) << bits << " " << symmetric;
        }
      }
    }
  }
}

// GatherBlockQuantized, fed our flat row packing, returns the dequantized rows.
TEST(BlockQuant, OnnxRuntimeGatherBlockQuantizedReadsOurLayout) {
  constexpr std::int64_t rows = 7;
  constexpr std::int64_t width = 64;
  const std::vector<float> table = wave(rows * width, 0.7f);
  for (int bits : {4, 8}) {
    for (bool symmetric : {true, false}) {
      const BlockQuantOptions o{bits, 32, symmetric};
      const QuantizedMatrix q = quantize_blocks(table, rows, width, o);
      test::TempDir dir;
      {
        graph::GraphBuilder g("gbq");
        std::vector<std::string> inputs = {g.initializer("t", graph::kUInt8, {rows, width * bits / 8}, q.packed),
                                           g.input("ids", graph::kInt64, {3}),
                                           g.initializer("s", {rows, q.blocks_per_row}, q.scales)};
        if (!symmetric) {
          inputs.push_back(g.initializer("zp", graph::kUInt8, {rows, static_cast<std::int64_t>(q.zero_points.size()) / rows},
                                         q.zero_points));
        }
        const std::string y = g.op("GatherBlockQuantized", inputs,
                                   {{"gather_axis", std::int64_t{0}}, {"quantize_axis", std::int64_t{1}},
                                    {"block_size", std::int64_t{32}}, {"bits", std::int64_t{bits}}},
                                   graph::kMicrosoftDomain);
        g.output(y, "y", graph::kFloat, {3, width});
        g.save(dir / "m.onnx");
      }
      OnnxEnvironment env;
      OnnxSession session(env, dir / "m.onnx");
      std::vector<std::int64_t> ids = {5, 0, 3};
      std::vector<Ort::Value> in;
      in.push_back(tensor_view(ids, {3}));
      auto out = session.run({"ids"}, in, {"y"});
      const float* y = out[0].GetTensorData<float>();
      const std::vector<float> dequantized = dequantize_blocks(q, o);
      for (std::size_t r = 0; r < ids.size(); ++r) {
        for (std::int64_t c = 0; c < width; ++c) {
          EXPECT_FLOAT_EQ(y[static_cast<std::int64_t>(r) * width + c], dequantized[static_cast<std::size_t>(ids[r] * width + c)])
              << bits << " " << symmetric;
        }
      }
    }
  }
}

}  // namespace
}  // namespace q3vl
