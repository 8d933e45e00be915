#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "q3vl/error.h"
#include "engine/sampler.h"
#include "text/stop_strings.h"

namespace q3vl {
namespace {

// Logits whose softmax is exactly `probs` (up to rounding).
std::vector<float> logits_for(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(static_cast<float>(std::log(p)));
  return out;
}

std::map<std::int64_t, int> histogram(Sampler& sampler, const std::vector<float>& logits, int draws) {
  std::map<std::int64_t, int> counts;
  for (int i = 0; i < draws; ++i) ++counts[sampler.next(logits, {})];
  return counts;
}

TEST(Sampler, GreedyTakesTheFirstMaximum) {
  SamplingOptions o;
  o.greedy = true;
  Sampler s(o);
  EXPECT_EQ(s.next(std::vector<float>{1, 3, 3, 2}, {}), 1);
}

TEST(Sampler, RepetitionPenaltyFollowsHf) {
  SamplingOptions o;
  o.greedy = true;
  o.repetition_penalty = 2.0f;
  Sampler s(o);
  // Token 1 (score 3 -> 1.5) loses to token 3 (2); a negative score is multiplied instead.
  const std::vector<std::int64_t> history = {1, 1, 0};
  EXPECT_EQ(s.next(std::vector<float>{-1, 3, 0, 2}, history), 3);
}

TEST(Sampler, DrawsFollowTheDistributionAndSeedsRepeat) {
  SamplingOptions o;
  o.seed = 42;
  Sampler a(o);
  Sampler b(o);
  const std::vector<float> logits = logits_for({0.5, 0.3, 0.2});
  const auto counts = histogram(a, logits, 20000);
  EXPECT_NEAR(counts.at(0) / 20000.0, 0.5, 0.02);
  EXPECT_NEAR(counts.at(1) / 20000.0, 0.3, 0.02);
  EXPECT_NEAR(counts.at(2) / 20000.0, 0.2, 0.02);
  EXPECT_EQ(histogram(b, logits, 20000), counts);
}

TEST(Sampler, TopKTopPAndMinPRestrictTheSupport) {
  const std::vector<float> logits = logits_for({0.5, 0.3, 0.15, 0.05});
  SamplingOptions o;
  o.seed = 1;
  o.top_k = 2;
  Sampler top_k(o);
  EXPECT_EQ(histogram(top_k, logits, 2000).size(), 2u);
  o.top_k = 0;
  o.top_p = 0.6f;  // ascending mass: 0.05, 0.20 <= 0.4 dropped; 0.5 > 0.4 stops: keeps {0, 1}
  Sampler top_p(o);
  const auto p_counts = histogram(top_p, logits, 2000);
  EXPECT_EQ(p_counts.size(), 2u);
  EXPECT_TRUE(p_counts.count(0) && p_counts.count(1));
  o.top_p = 1.0f;
  o.min_p = 0.5f;  // threshold 0.25: keeps {0, 1}
  Sampler min_p(o);
  EXPECT_EQ(histogram(min_p, logits, 2000).size(), 2u);
  o.min_p = 0.0f;
  o.temperature = 0.05f;  // nearly greedy
  Sampler cold(o);
  EXPECT_EQ(histogram(cold, logits, 500).size(), 1u);
}

TEST(Sampler, RejectsBadOptions) {
  SamplingOptions o;
  o.temperature = 0.0f;
  EXPECT_THROW(Sampler{o}, InvalidInput);
  o = {};
  o.top_p = 0.0f;
  EXPECT_THROW(Sampler{o}, InvalidInput);
  o = {};
  o.top_k = -1;
  EXPECT_THROW(Sampler{o}, InvalidInput);
}

TEST(StopStrings, HoldsBackPossiblePrefixesAndCutsAtTheStop) {
  StopStringMatcher m({"</end>", "STOP"});
  EXPECT_EQ(m.push("hello </e"), "hello ");
  EXPECT_EQ(m.push("x"), "</ex");
  EXPECT_EQ(m.push(" ST"), " ");
  EXPECT_EQ(m.push("OP and more"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("later"), "");
  StopStringMatcher n({"STOP"});
  EXPECT_EQ(n.push("abc ST"), "abc ");
  EXPECT_EQ(n.flush(), "ST");
  StopStringMatcher none({});
  EXPECT_EQ(none.push("anything"), "anything");
}

}  // namespace
}  // namespace q3vl
