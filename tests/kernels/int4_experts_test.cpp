// q3vl's int4 expert kernel (kernels/int4_experts.h) against a plain double-precision reference
// written here from the layer's definition: HF's routing, SwiGLU experts over dequantized weights
// ((nibble - 8) * scale) and float activations. The kernel quantizes activations to int8, so it
// agrees to ~1%; with inputs that int8 represents exactly, every instruction set must agree exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/int4_experts.h"
#include "kernels/int4_rows.h"
#include "kernels/int4_test_support.h"
#include "q3vl/error.h"

namespace q3vl::kernels {
namespace {

std::vector<double> matvec(const Int4Matrices& m, std::int64_t e, const std::vector<double>& x) {
  std::vector<double> y(static_cast<std::size_t>(m.rows), 0.0);
  for (std::int64_t r = 0; r < m.rows; ++r) {
    for (std::int64_t c = 0; c < m.cols; ++c) y[static_cast<std::size_t>(r)] += weight(m, e, r, c) * x[static_cast<std::size_t>(c)];
  }
  return y;
}

std::vector<double> reference(const ExpertLayer& layer, const std::vector<float>& x, const std::vector<float>& logits,
                              std::int64_t tokens) {
  const std::int64_t E = layer.gate_up.experts, H = layer.gate_up.cols, I = layer.down.cols;
  std::vector<double> out(static_cast<std::size_t>(tokens * H), 0.0);
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::vector<double> p(static_cast<std::size_t>(E));
    const float top = *std::max_element(logits.begin() + t * E, logits.begin() + (t + 1) * E);
    for (std::int64_t e = 0; e < E; ++e) p[static_cast<std::size_t>(e)] = std::exp(static_cast<double>(logits[static_cast<std::size_t>(t * E + e)] - top));
    std::vector<std::int64_t> order(static_cast<std::size_t>(E));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return p[a] > p[b]; });
    double chosen = 0, total = std::accumulate(p.begin(), p.end(), 0.0);
    for (std::int64_t j = 0; j < layer.top_k; ++j) chosen += p[static_cast<std::size_t>(order[j])];
    const std::vector<double> xt(x.begin() + t * H, x.begin() + (t + 1) * H);
    for (std::int64_t j = 0; j < layer.top_k; ++j) {
      const std::int64_t e = order[static_cast<std::size_t>(j)];
      const double w = p[static_cast<std::size_t>(e)] / (layer.normalize_top_k ? chosen : total);
      const std::vector<double> h = matvec(layer.gate_up, e, xt);
      std::vector<double> act(static_cast<std::size_t>(I));
      for (std::int64_t i = 0; i < I; ++i) {
        const double gate = h[static_cast<std::size_t>(2 * i)];
        act[static_cast<std::size_t>(i)] = gate / (1.0 + std::exp(-gate)) * h[static_cast<std::size_t>(2 * i + 1)];
      }
      const std::vector<double> y = matvec(layer.down, e, act);
      for (std::int64_t c = 0; c < H; ++c) out[static_cast<std::size_t>(t * H + c)] += w * y[static_cast<std::size_t>(c)];
    }
  }
  return out;
}

struct Shape {
  std::int64_t experts, hidden, intermediate, block, k, tokens;
  bool normalize;
};

TEST(Int4Experts, MatchTheDequantizedReferenceOnEveryInstructionSet) {
  const std::vector<Shape> shapes = {
      {8, 128, 64, 32, 2, 1, true},    // a decode step, vector kernels
      {4, 384, 288, 32, 2, 1, true},   // decode rows of 12 and 9 groups: passes of eight, then the rest
      {8, 128, 64, 32, 2, 7, true},    // token tiles of 4 and 3
      {6, 96, 96, 32, 3, 300, false},  // two passes (256 tokens each), no renormalisation
      {5, 128, 64, 64, 2, 5, true},    // two groups of 32 per block
      {4, 48, 24, 16, 2, 3, true},     // block 16, a short last group: portable kernel only
      {8, 512, 512, 32, 2, 1, true},   // decode: two experts' 2048 gate/up rows in chunks, one crossing experts
      {8, 512, 512, 32, 3, 2, true},   // two tokens, at most two members an expert: chunked too
  };
  std::size_t checked = 0;
  for (const Shape& s : shapes) {
    std::mt19937 rng(static_cast<unsigned>(s.hidden * 31 + s.tokens));
    RandomMatrices up = random_matrices(s.experts, 2 * s.intermediate, s.hidden, s.block, rng);
    RandomMatrices down = random_matrices(s.experts, s.hidden, s.intermediate, s.block, rng);
    const ExpertLayer layer{s.k, s.normalize, up.view, down.view};
    check_expert_layer(layer, s.experts);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(static_cast<std::size_t>(s.tokens * s.hidden)), logits(static_cast<std::size_t>(s.tokens * s.experts));
    for (float& v : x) v = normal(rng);
    for (float& v : logits) v = normal(rng);
    // And with half-float scales (text.kernels.onnx's), against a reference with those scales.
    const RandomMatrices half_up = with_half_scales(up), half_down = with_half_scales(down);
    const ExpertLayer half_layer{s.k, s.normalize, half_up.view, half_down.view};
    for (const ExpertLayer* l : {&layer, &half_layer}) {
      const std::vector<double> ref = reference(*l, x, logits, s.tokens);
      for (Int4Isa isa : available_isas()) {
        SCOPED_TRACE("hidden " + std::to_string(s.hidden) + " block " + std::to_string(s.block) + " tokens " +
                     std::to_string(s.tokens) + " " + to_string(isa) + (l == &half_layer ? " half scales" : ""));
        std::vector<float> out(x.size(), -1.0f);
        run_int4_experts(*l, x.data(), logits.data(), s.tokens, out.data(), serial_for(), isa);
        EXPECT_LT(relative_error(out, ref), 0.03);
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 2 * shapes.size() * available_isas().size());
  std::printf("[ int4 experts ] %zu shape x instruction-set cases; instruction sets here:", checked);
  for (Int4Isa isa : available_isas()) std::printf(" %s", to_string(isa).c_str());
  std::printf("\n");
}

// Activations that int8 holds exactly (integers up to 127, each group's largest exactly 127) and
// power-of-two scales: every kernel's rows must equal the exact products, whatever the order.
TEST(Int4Experts, RowKernelsAreExactWhereInt8IsExact) {
  std::mt19937 rng(7);
  const std::int64_t rows = 7, cols = 256, tokens = 5;
  RandomMatrices w32 = random_matrices(1, rows, cols, 32, rng, /*exact=*/true);  // a scale per group
  RandomMatrices w64 = random_matrices(1, rows, cols, 64, rng, /*exact=*/true);  // two groups per scale
  QuantizedActivations a;
  a.reset(tokens, cols, 32);
  std::vector<float> x(static_cast<std::size_t>(tokens * cols));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = i % 32 == 5 ? 127.0f : static_cast<float>(static_cast<int>(rng() % 255) - 127);
  for (std::int64_t t = 0; t < tokens; ++t) a.quantize(t, x.data() + t * cols);
  std::vector<std::int64_t> order = {4, 0, 3, 1, 2};
  std::size_t checked = 0;
  // 1 token (a decode step's row-at-a-time loop), 2 (four rows at once), 5 (token tiles of 4 and 1).
  for (const RandomMatrices* m : {&w32, &w64}) {
    const Int4Matrices& w = m->view;
    for (const std::int64_t count : {std::int64_t{1}, std::int64_t{2}, tokens}) {
      for (Int4Isa isa : available_isas()) {
        SCOPED_TRACE(to_string(isa) + ", " + std::to_string(count) + " tokens, block " + std::to_string(w.block));
        std::vector<float> out(static_cast<std::size_t>(count * rows), 0.0f);
        RowsJob job{w.packed, w.scales, rows, cols, w.block, cols / w.block, &a, order.data(), count, out.data(), rows};
        int4_rows_kernel(isa, 32)(job);
        for (std::int64_t t = 0; t < count; ++t) {
          for (std::int64_t r = 0; r < rows; ++r) {
            double expected = 0;
            for (std::int64_t c = 0; c < cols; ++c) expected += weight(w, 0, r, c) * x[static_cast<std::size_t>(order[t] * cols + c)];
            ASSERT_EQ(out[static_cast<std::size_t>(t * rows + r)], expected) << "token " << t << " row " << r;
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 2 * available_isas().size() * rows * (1 + 2 + tokens));
}

TEST(Int4Experts, RoutingIsHfsTopKWithTiesToTheLowerIndex) {
  std::int32_t experts[3];
  float weights[3];
  const std::vector<float> logits = {0.5f, 2.0f, 1.0f, 2.0f, 1.0f};
  route_token(logits, 3, true, experts, weights);
  EXPECT_EQ(std::vector<std::int32_t>(experts, experts + 3), (std::vector<std::int32_t>{1, 3, 2}));
  EXPECT_NEAR(weights[0] + weights[1] + weights[2], 1.0f, 1e-6f);
  EXPECT_EQ(weights[0], weights[1]);
  route_token(logits, 3, false, experts, weights);
  double softmax_sum = 0;
  for (float v : logits) softmax_sum += std::exp(v - 2.0);
  EXPECT_NEAR(weights[0], 1.0 / softmax_sum, 1e-6);
}

TEST(Int4Experts, MismatchedShapesAreRefusedNamingThem) {
  std::mt19937 rng(1);
  RandomMatrices up = random_matrices(4, 64, 64, 32, rng);
  RandomMatrices down = random_matrices(4, 64, 32, 32, rng);
  EXPECT_NO_THROW(check_expert_layer({2, true, up.view, down.view}, 4));
  EXPECT_THROW(check_expert_layer({2, true, up.view, down.view}, 5), InvalidInput);  // router width
  EXPECT_THROW(check_expert_layer({5, true, up.view, down.view}, 4), InvalidInput);  // k > E
  RandomMatrices odd_blocks = random_matrices(4, 64, 96, 96, rng);  // 96: a multiple of 32, not a power of two
  RandomMatrices odd_down = random_matrices(4, 96, 32, 32, rng);
  EXPECT_THROW(check_expert_layer({2, true, odd_blocks.view, odd_down.view}, 4), InvalidInput);
  RandomMatrices wrong_down = random_matrices(4, 64, 48, 16, rng);
  try {
    check_expert_layer({2, true, up.view, wrong_down.view}, 4);
    FAIL() << "accepted down [64, 48] after gate_up [64, 64]";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("[2I, H]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace q3vl::kernels
