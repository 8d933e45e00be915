// q3vl's patch attention (kernels/patch_attention.h) against the vision attention written out here
// in double precision: q and k rotated (x cos + rotate_half(x) sin), softmax(scale q k^T) v within
// each segment, on every instruction set this CPU runs. Head sizes of the golden models (16), the
// 2B's (64) and the 4B's (72, not a whole vector); segments of one row, of fewer rows than a tile,
// and of more than a block of queries and of keys; scores whose maximum arrives in a later key
// block. Segments and items that do not tile the rows are errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/int4_matrices.h"
#include "kernels/int4_test_support.h"
#include "kernels/patch_attention.h"
#include "q3vl/error.h"

namespace q3vl::kernels {
namespace {

struct Case {
  std::int64_t num_heads, head_dim;
  std::vector<std::int64_t> segment_lengths;
  float spread;  // standard deviation of q and k: larger gives peakier softmaxes
  bool rising;   // keys grow along the segment, so later key blocks hold larger scores
};

struct Inputs {
  std::int64_t rows = 0;
  std::vector<float> qkv, cos, sin;
  std::vector<AttentionSegment> segments;
};

Inputs random_inputs(const Case& c, std::mt19937& rng) {
  Inputs in;
  for (std::int64_t length : c.segment_lengths) {
    in.segments.push_back({in.rows, in.rows + length});
    in.rows += length;
  }
  const std::int64_t D = c.num_heads * c.head_dim;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  in.qkv.resize(static_cast<std::size_t>(in.rows * 3 * D));
  for (std::int64_t r = 0; r < in.rows; ++r) {
    for (std::int64_t i = 0; i < 3 * D; ++i) {
      float x = normal(rng);
      if (i < 2 * D) x *= c.spread;
      if (c.rising && i >= D && i < 2 * D) x = std::abs(x) * (1.0f + 0.01f * static_cast<float>(r));
      in.qkv[static_cast<std::size_t>(r * 3 * D + i)] = x;
    }
  }
  std::uniform_real_distribution<float> angle(-3.0f, 3.0f);
  in.cos.resize(static_cast<std::size_t>(in.rows * c.head_dim));
  in.sin.resize(in.cos.size());
  for (std::size_t i = 0; i < in.cos.size(); ++i) {
    const float a = angle(rng);
    in.cos[i] = std::cos(a);
    in.sin[i] = std::sin(a);
  }
  return in;
}

std::vector<double> rotated(const Inputs& in, std::int64_t row, const float* x, std::int64_t hd) {
  std::vector<double> out(static_cast<std::size_t>(hd));
  const std::int64_t half = hd / 2;
  for (std::int64_t d = 0; d < hd; ++d) {
    const double other = d < half ? -static_cast<double>(x[d + half]) : static_cast<double>(x[d - half]);
    out[static_cast<std::size_t>(d)] = x[d] * static_cast<double>(in.cos[static_cast<std::size_t>(row * hd + d)]) +
                                       other * static_cast<double>(in.sin[static_cast<std::size_t>(row * hd + d)]);
  }
  return out;
}

std::vector<double> reference(const Case& c, const Inputs& in, float scale) {
  const std::int64_t hd = c.head_dim, D = c.num_heads * hd;
  std::vector<double> out(static_cast<std::size_t>(in.rows * D));
  for (const AttentionSegment& s : in.segments) {
    for (std::int64_t h = 0; h < c.num_heads; ++h) {
      std::vector<std::vector<double>> keys;
      for (std::int64_t j = s.first; j < s.end; ++j) keys.push_back(rotated(in, j, in.qkv.data() + j * 3 * D + D + h * hd, hd));
      for (std::int64_t i = s.first; i < s.end; ++i) {
        const std::vector<double> q = rotated(in, i, in.qkv.data() + i * 3 * D + h * hd, hd);
        std::vector<double> scores;
        double top = -INFINITY;
        for (const std::vector<double>& k : keys) {
          double dot = 0.0;
          for (std::int64_t d = 0; d < hd; ++d) dot += q[static_cast<std::size_t>(d)] * k[static_cast<std::size_t>(d)];
          scores.push_back(dot * scale);
          top = std::max(top, scores.back());
        }
        double sum = 0.0;
        for (double& x : scores) sum += x = std::exp(x - top);
        for (std::int64_t d = 0; d < hd; ++d) {
          double acc = 0.0;
          for (std::size_t j = 0; j < scores.size(); ++j) {
            acc += scores[j] * in.qkv[static_cast<std::size_t>((s.first + static_cast<std::int64_t>(j)) * 3 * D + 2 * D + h * hd + d)];
          }
          out[static_cast<std::size_t>(i * D + h * hd + d)] = acc / sum;
        }
      }
    }
  }
  return out;
}

TEST(PatchAttention, MatchesAttentionWrittenOutOnEveryInstructionSet) {
  const std::vector<Case> cases = {
      {2, 16, {16, 4, 12}, 1.0f, false},      // a golden model's shape: three small segments
      {4, 64, {1, 3, 300}, 1.0f, false},      // one row, less than a tile, more than a key block
      {3, 72, {70, 33}, 2.0f, false},         // the 4B's head size: 72 is not a whole vector
      {2, 64, {600}, 0.5f, true},             // the largest scores in the last key blocks
      {1, 64, {257, 31, 65}, 3.0f, false},    // peaky softmaxes, a key past a block's edge
  };
  std::mt19937 rng(7);
  int checked = 0;
  for (const Case& c : cases) {
    const Inputs in = random_inputs(c, rng);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    const std::vector<double> expected = reference(c, in, scale);
    for (const Int4Isa isa : kEveryInt4Isa) {
      if (!int4_isa_available(isa)) continue;
      std::vector<float> out(expected.size(), NAN);
      PatchAttention call;
      call.rows = in.rows;
      call.num_heads = c.num_heads;
      call.head_dim = c.head_dim;
      call.scale = scale;
      const std::int64_t D = c.num_heads * c.head_dim;  // q, k, v side by side in each row
      call.query = in.qkv.data();
      call.key = in.qkv.data() + D;
      call.value = in.qkv.data() + 2 * D;
      call.stride = 3 * D;
      call.cos = in.cos.data();
      call.sin = in.sin.data();
      call.segments = in.segments;
      call.out = out.data();
      PatchAttentionScratch scratch;
      run_patch_attention(call, serial_for(), scratch, isa);
      double worst = 0.0, largest = 0.0;
      for (std::size_t i = 0; i < out.size(); ++i) {
        worst = std::max(worst, std::abs(out[i] - expected[i]));  // NaN (a row left unwritten) fails below
        largest = std::max(largest, std::abs(expected[i]));
        ASSERT_FALSE(std::isnan(out[i])) << to_string(isa) << " left output " << i << " unwritten";
      }
      // float's rounding of the scores themselves: ~3e-6 of the output where scores reach ~50 (the
      // peaky case), ~3e-7 at the others
      EXPECT_LT(worst / largest, 1e-5) << to_string(isa) << ", heads of " << c.head_dim;
      std::printf("[ %s, %lld heads of %lld, %zu segments ] relative error %.2g\n", to_string(isa).c_str(),
                  static_cast<long long>(c.num_heads), static_cast<long long>(c.head_dim), in.segments.size(), worst / largest);
      ++checked;
    }
  }
  EXPECT_EQ(checked, static_cast<int>(cases.size() * available_isas().size()));
}

TEST(PatchAttention, ItemsSplitIntoTheirTemporalSlices) {
  const std::vector<std::int64_t> starts{0, 16, 24}, ends{16, 24, 60}, slices{1, 2, 3};
  const std::vector<AttentionSegment> segments = item_segments(starts, ends, slices, 60);
  ASSERT_EQ(segments.size(), 6u);
  const std::vector<std::pair<std::int64_t, std::int64_t>> expected{{0, 16}, {16, 20}, {20, 24}, {24, 36}, {36, 48}, {48, 60}};
  for (std::size_t i = 0; i < segments.size(); ++i) {
    EXPECT_EQ(segments[i].first, expected[i].first) << i;
    EXPECT_EQ(segments[i].end, expected[i].second) << i;
  }
}

TEST(PatchAttention, RowsTheSegmentsDoNotTileAreErrors) {
  const std::vector<std::int64_t> one{1};
  EXPECT_THROW(item_segments(std::vector<std::int64_t>{0}, std::vector<std::int64_t>{10}, std::vector<std::int64_t>{3}, 10), InvalidInput);  // 10 rows in 3 slices
  EXPECT_THROW(item_segments(std::vector<std::int64_t>{0}, std::vector<std::int64_t>{8}, one, 10), InvalidInput);    // rows 8..10 left out
  EXPECT_THROW(item_segments(std::vector<std::int64_t>{2}, std::vector<std::int64_t>{10}, one, 10), InvalidInput);   // rows 0..2 left out
  EXPECT_THROW(item_segments(std::vector<std::int64_t>{0}, std::vector<std::int64_t>{12}, one, 10), InvalidInput);   // past the rows
  EXPECT_THROW(item_segments(std::vector<std::int64_t>{0, 4}, std::vector<std::int64_t>{6, 10}, std::vector<std::int64_t>{1, 1}, 10),
               InvalidInput);  // overlapping items
  EXPECT_THROW(item_segments(std::vector<std::int64_t>{0}, std::vector<std::int64_t>{10}, std::vector<std::int64_t>{0}, 10), InvalidInput);
  EXPECT_THROW(item_segments(std::vector<std::int64_t>{0, 5}, std::vector<std::int64_t>{5}, one, 10), InvalidInput);  // counts differ

  std::vector<float> qkv(3 * 2 * 8 * 10), table(8 * 10), out(2 * 8 * 10);
  const std::vector<AttentionSegment> gap{{0, 4}, {5, 10}};
  PatchAttention call{10, 2, 8, 0.35f, qkv.data(), qkv.data() + 16, qkv.data() + 32, 48, table.data(), table.data(), gap, out.data()};
  EXPECT_THROW(check_patch_attention(call), InvalidInput);
  const std::vector<AttentionSegment> whole{{0, 10}};
  call.segments = whole;
  EXPECT_NO_THROW(check_patch_attention(call));
  call.stride = 15;  // rows overlap
  EXPECT_THROW(check_patch_attention(call), InvalidInput);
  call.stride = 48;
  call.head_dim = 7;  // the rotation needs halves
  EXPECT_THROW(check_patch_attention(call), InvalidInput);
}

}  // namespace
}  // namespace q3vl::kernels
