// The vectorized SwiGLU (kernels/swiglu.h) against silu(gate) * up in double precision, on every
// instruction set this CPU runs, in both row layouts (halves; interleaved, also in place), for
// widths with and without a vector tail and for gates far out in either direction.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/swiglu.h"

namespace q3vl::kernels {
namespace {

double swiglu_reference(double gate, double up) { return gate / (1.0 + std::exp(-gate)) * up; }

TEST(Swiglu, MatchesDoublePrecisionOnEveryInstructionSetAndLayout) {
  std::size_t checked = 0;
  for (const Int4Isa isa : kEveryInt4Isa) {
    if (!int4_isa_available(isa)) continue;
    for (const std::int64_t width : {std::int64_t{768}, std::int64_t{37}, std::int64_t{3}}) {
      for (const GateUpLayout layout : {GateUpLayout::Halves, GateUpLayout::Interleaved}) {
        for (const bool in_place : {false, true}) {
          if (in_place && layout == GateUpLayout::Halves) continue;
          const std::int64_t rows = 3;
          std::mt19937 rng(static_cast<unsigned>(width));
          std::normal_distribution<float> normal(0.0f, 4.0f);
          std::vector<float> gate_up(static_cast<std::size_t>(rows * 2 * width));
          for (float& v : gate_up) v = normal(rng);
          gate_up[0] = -120.0f;  // e^-gate beyond float: silu ~ 0
          gate_up[2] = 95.0f;    // silu = gate
          const std::vector<float> input = gate_up;
          std::vector<float> separate(static_cast<std::size_t>(rows * width));
          float* out = in_place ? gate_up.data() : separate.data();
          swiglu_rows(gate_up.data(), rows, width, layout, out, isa);
          double worst = 0;
          for (std::int64_t r = 0; r < rows; ++r) {
            for (std::int64_t i = 0; i < width; ++i) {
              const float* row = input.data() + r * 2 * width;
              const double gate = layout == GateUpLayout::Halves ? row[i] : row[2 * i];
              const double up = layout == GateUpLayout::Halves ? row[width + i] : row[2 * i + 1];
              const double want = swiglu_reference(gate, up);
              // in place, row r's outputs lie at r * width (rows are written in order)
              const double got = out[r * width + i];
              worst = std::max(worst, std::fabs(got - want) / std::max(1e-3, std::fabs(want)));
            }
          }
          EXPECT_LT(worst, 2e-6) << to_string(isa) << ", width " << width << (layout == GateUpLayout::Halves ? ", halves" : ", interleaved")
                                 << (in_place ? ", in place" : "");
          ++checked;
        }
      }
    }
  }
  EXPECT_GE(checked, 9u);  // the portable build at least
}

}  // namespace
}  // namespace q3vl::kernels
