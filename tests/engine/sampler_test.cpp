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

// HF penalises each distinct token once (gather/scatter), however often it occurs.
TEST(Sampler, RepetitionPenaltyCountsEachTokenOnce) {
  SamplingOptions o;
  o.greedy = true;
  o.repetition_penalty = 2.0f;
  Sampler s(o);
  // Token 1: 3 -> 1.5 (not 0.75 for two occurrences), still above token 3's 1.4.
  EXPECT_EQ(s.next(std::vector<float>{0, 3, 0, 1.4f}, std::vector<std::int64_t>{1, 1}), 1);
}

// OpenAI's penalties: presence once per token present, frequency per occurrence, over the reply
// only (the prompt's tokens are not penalised).
TEST(Sampler, PresenceAndFrequencyPenaltiesCountTheReplyOnly) {
  SamplingOptions o;
  o.greedy = true;
  o.presence_penalty = 0.5f;
  Sampler presence(o);
  const std::vector<float> logits = {0, 2.0f, 1.6f, 0};
  // Token 1 in the prompt only: not penalised.
  EXPECT_EQ(presence.next(logits, std::vector<std::int64_t>{1, 3}, 1), 1);
  // Token 1 in the reply: 2.0 - 0.5 < 1.6.
  EXPECT_EQ(presence.next(logits, std::vector<std::int64_t>{3, 1}, 1), 2);
  o.presence_penalty = 0.0f;
  o.frequency_penalty = 0.15f;
  Sampler frequency(o);
  // Twice in the reply: 2.0 - 0.3 = 1.7 > 1.6; three times: 1.55 < 1.6.
  EXPECT_EQ(frequency.next(logits, std::vector<std::int64_t>{1, 1}, 2), 1);
  EXPECT_EQ(frequency.next(logits, std::vector<std::int64_t>{1, 1, 1}, 3), 2);
  o.frequency_penalty = 2.5f;
  EXPECT_THROW(Sampler{o}, InvalidInput);
}

}  // namespace
}  // namespace q3vl
