// q3vl's decode attention kernel (kernels/decode_attention.h) against attention written out here in
// double precision (softmax(scale * q k^T) v over the cached positions and the new one), on every
// instruction set this CPU runs: Qwen3-VL's head size (128, query heads in pairs), others that take
// the general loop, batches whose sequences hold different lengths, a cache appended in place and
// one copied into a larger buffer. Bad lengths and heads are errors, not reads past a buffer.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/decode_attention.h"
#include "kernels/int4_test_support.h"
#include "math/half_float.h"
#include "q3vl/error.h"

namespace q3vl::kernels {
namespace {

struct Case {
  std::int64_t num_heads, kv_heads, head_dim;
  std::vector<std::int64_t> cached;
  std::int64_t capacity;
  std::int64_t past_capacity;  // 0: the cache is appended in place
};

struct Tensors {
  std::vector<float> query, key, value, past_key, past_value, present_key, present_value, out;
};

Tensors random_tensors(const Case& c, std::mt19937& rng) {
  const auto batch = static_cast<std::int64_t>(c.cached.size());
  const std::int64_t past = c.past_capacity > 0 ? c.past_capacity : c.capacity;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const auto fill = [&](std::int64_t count) {
    std::vector<float> v(static_cast<std::size_t>(count));
    for (float& x : v) x = normal(rng);
    return v;
  };
  Tensors t;
  t.query = fill(batch * c.num_heads * c.head_dim);
  t.key = fill(batch * c.kv_heads * c.head_dim);
  t.value = fill(batch * c.kv_heads * c.head_dim);
  t.past_key = fill(batch * c.kv_heads * past * c.head_dim);
  t.past_value = fill(batch * c.kv_heads * past * c.head_dim);
  if (c.past_capacity > 0) {
    t.present_key.assign(static_cast<std::size_t>(batch * c.kv_heads * c.capacity * c.head_dim), 0.0f);
    t.present_value = t.present_key;
  }
  t.out.assign(t.query.size(), 0.0f);
  return t;
}

DecodeAttention step_of(const Case& c, Tensors& t) {
  DecodeAttention s;
  s.batch = static_cast<std::int64_t>(c.cached.size());
  s.num_heads = c.num_heads;
  s.kv_heads = c.kv_heads;
  s.head_dim = c.head_dim;
  s.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  s.query = t.query.data();
  s.key = t.key.data();
  s.value = t.value.data();
  s.past_key = t.past_key.data();
  s.past_value = t.past_value.data();
  s.past_capacity = c.past_capacity > 0 ? c.past_capacity : c.capacity;
  s.present_key = c.past_capacity > 0 ? t.present_key.data() : t.past_key.data();
  s.present_value = c.past_capacity > 0 ? t.present_value.data() : t.past_value.data();
  s.capacity = c.capacity;
  s.cached = c.cached;
  s.out = t.out.data();
  return s;
}

// The attention of every sequence and head, from the tensors before the step.
std::vector<double> reference(const Case& c, const Tensors& before) {
  const std::int64_t D = c.head_dim, group = c.num_heads / c.kv_heads;
  const std::int64_t past = c.past_capacity > 0 ? c.past_capacity : c.capacity;
  std::vector<double> out(before.out.size(), 0.0);
  for (std::size_t b = 0; b < c.cached.size(); ++b) {
    const std::int64_t n = c.cached[b] + 1;
    for (std::int64_t h = 0; h < c.num_heads; ++h) {
      const std::int64_t j = h / group;
      const auto bj = static_cast<std::int64_t>(b) * c.kv_heads + j;
      const auto key_at = [&](std::int64_t t, std::int64_t d) {
        return t < n - 1 ? before.past_key[static_cast<std::size_t>((bj * past + t) * D + d)] : before.key[static_cast<std::size_t>(bj * D + d)];
      };
      const auto value_at = [&](std::int64_t t, std::int64_t d) {
        return t < n - 1 ? before.past_value[static_cast<std::size_t>((bj * past + t) * D + d)] : before.value[static_cast<std::size_t>(bj * D + d)];
      };
      const float* q = before.query.data() + (static_cast<std::int64_t>(b) * c.num_heads + h) * D;
      std::vector<double> scores(static_cast<std::size_t>(n));
      double top = -1e300;
      for (std::int64_t t = 0; t < n; ++t) {
        double dot = 0;
        for (std::int64_t d = 0; d < D; ++d) dot += static_cast<double>(q[d]) * key_at(t, d);
        scores[static_cast<std::size_t>(t)] = dot / std::sqrt(static_cast<double>(D));
        top = std::max(top, scores[static_cast<std::size_t>(t)]);
      }
      double sum = 0;
      for (double& s : scores) sum += s = std::exp(s - top);
      for (std::int64_t d = 0; d < D; ++d) {
        double v = 0;
        for (std::int64_t t = 0; t < n; ++t) v += scores[static_cast<std::size_t>(t)] / sum * value_at(t, d);
        out[static_cast<std::size_t>((static_cast<std::int64_t>(b) * c.num_heads + h) * D + d)] = v;
      }
    }
  }
  return out;
}

// The present cache holds the past positions and, after them, the new key and value.
bool cache_appended(const Case& c, const Tensors& before, const Tensors& after) {
  const std::int64_t D = c.head_dim, past = c.past_capacity > 0 ? c.past_capacity : c.capacity;
  const std::vector<float>& keys = c.past_capacity > 0 ? after.present_key : after.past_key;
  const std::vector<float>& values = c.past_capacity > 0 ? after.present_value : after.past_value;
  for (std::size_t b = 0; b < c.cached.size(); ++b) {
    for (std::int64_t j = 0; j < c.kv_heads; ++j) {
      const auto bj = static_cast<std::int64_t>(b) * c.kv_heads + j;
      for (std::int64_t t = 0; t <= c.cached[b]; ++t) {
        for (std::int64_t d = 0; d < D; ++d) {
          const auto at = static_cast<std::size_t>((bj * c.capacity + t) * D + d);
          const bool fresh = t == c.cached[b];
          const float k = fresh ? before.key[static_cast<std::size_t>(bj * D + d)] : before.past_key[static_cast<std::size_t>((bj * past + t) * D + d)];
          const float v = fresh ? before.value[static_cast<std::size_t>(bj * D + d)] : before.past_value[static_cast<std::size_t>((bj * past + t) * D + d)];
          if (keys[at] != k || values[at] != v) return false;
        }
      }
    }
  }
  return true;
}

TEST(DecodeAttention, MatchesAttentionInDoublePrecisionOnEveryInstructionSet) {
  const std::vector<Case> cases = {
      {32, 4, 128, {0, 37}, 64, 0},     // 30B-A3B's heads (groups of 8), a first token and a cached sequence, in place
      {16, 8, 128, {300}, 512, 0},      // the 2B's heads (pairs)
      {4, 2, 64, {100}, 160, 120},      // past copied into a larger present buffer
      {4, 2, 32, {5, 0, 17}, 24, 0},    // a head size the pairs take only in narrower registers
      {6, 2, 40, {23}, 32, 0},          // groups of 3 and a head size of no vector multiple: the general loop
      {8, 4, 128, {2000}, 2048, 0},     // a long context
  };
  std::size_t checked = 0;
  for (const Int4Isa isa : kEveryInt4Isa) {
    if (!int4_isa_available(isa)) continue;
    for (const Case& c : cases) {
      std::mt19937 rng(static_cast<unsigned>(c.head_dim * 31 + c.num_heads));
      const Tensors before = random_tensors(c, rng);
      Tensors after = before;
      run_decode_attention(step_of(c, after), serial_for(), isa);
      const double error = relative_error(after.out, reference(c, before));
      EXPECT_LT(error, 1e-5) << to_string(isa) << ", " << c.num_heads << "/" << c.kv_heads << " heads of " << c.head_dim;
      EXPECT_TRUE(cache_appended(c, before, after)) << to_string(isa) << ", " << c.num_heads << "/" << c.kv_heads << " heads of " << c.head_dim;
      std::printf("[ %s, %lld/%lld heads of %lld, %zu sequences ] relative error %.2g\n", to_string(isa).c_str(),
                  static_cast<long long>(c.num_heads), static_cast<long long>(c.kv_heads), static_cast<long long>(c.head_dim), c.cached.size(), error);
      ++checked;
    }
  }
  EXPECT_GE(checked, cases.size());  // the portable loop at least; here every set the CPU has
}

// A half-float cache (q3vl's kernel graphs): the same attention over keys and values rounded to half
// floats, the new ones included (they are rounded as they are appended), and a present cache that
// holds the past halves as they were and the new key and value rounded to nearest-even.
TEST(DecodeAttention, AHalfFloatCacheIsAttentionOverTheRoundedKeysAndValues) {
  const std::vector<Case> cases = {
      {32, 4, 128, {0, 37}, 64, 0},   // groups of 8, a first token and a cached sequence, in place
      {16, 8, 128, {300}, 512, 0},    // the 2B's heads (pairs)
      {4, 2, 64, {100}, 160, 120},    // past copied into a larger present buffer
      {6, 2, 40, {23}, 32, 0},        // the general loop, a tail of the head size past any vector
  };
  const auto halves_of = [](const std::vector<float>& v) {
    std::vector<std::uint16_t> h(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) h[i] = float_to_fp16(v[i]);
    return h;
  };
  const auto rounded = [](std::vector<float> v) {
    for (float& x : v) x = fp16_to_float(float_to_fp16(x));
    return v;
  };
  std::size_t checked = 0;
  for (const Int4Isa isa : kEveryInt4Isa) {
    if (!int4_isa_available(isa)) continue;
    for (const Case& c : cases) {
      std::mt19937 rng(static_cast<unsigned>(c.head_dim * 17 + c.num_heads));
      const Tensors before = random_tensors(c, rng);
      Tensors as_rounded = before;  // what the attention sees
      as_rounded.key = rounded(before.key);
      as_rounded.value = rounded(before.value);
      as_rounded.past_key = rounded(before.past_key);
      as_rounded.past_value = rounded(before.past_value);
      std::vector<std::uint16_t> past_key = halves_of(before.past_key), past_value = halves_of(before.past_value);
      std::vector<std::uint16_t> present_key(before.present_key.size(), 0), present_value(present_key.size(), 0);
      Tensors after = before;
      DecodeAttention step = step_of(c, after);
      step.cache = CacheType::Float16;
      step.past_key = past_key.data();
      step.past_value = past_value.data();
      step.present_key = c.past_capacity > 0 ? present_key.data() : past_key.data();
      step.present_value = c.past_capacity > 0 ? present_value.data() : past_value.data();
      run_decode_attention(step, serial_for(), isa);
      const std::string what = to_string(isa) + ", " + std::to_string(c.num_heads) + "/" + std::to_string(c.kv_heads) + " heads of " + std::to_string(c.head_dim);
      const double error = relative_error(after.out, reference(c, as_rounded));
      EXPECT_LT(error, 1e-5) << what;
      // The present cache as floats, to compare with what the float cache would hold.
      Tensors cache_after = as_rounded;
      const std::vector<std::uint16_t>& keys = c.past_capacity > 0 ? present_key : past_key;
      const std::vector<std::uint16_t>& values = c.past_capacity > 0 ? present_value : past_value;
      std::vector<float>& key_floats = c.past_capacity > 0 ? cache_after.present_key : cache_after.past_key;
      std::vector<float>& value_floats = c.past_capacity > 0 ? cache_after.present_value : cache_after.past_value;
      for (std::size_t i = 0; i < keys.size(); ++i) {
        key_floats[i] = fp16_to_float(keys[i]);
        value_floats[i] = fp16_to_float(values[i]);
      }
      EXPECT_TRUE(cache_appended(c, as_rounded, cache_after)) << what;
      std::printf("[ half cache, %s ] relative error %.2g\n", what.c_str(), error);
      ++checked;
    }
  }
  EXPECT_GE(checked, cases.size());
}

TEST(DecodeAttention, ParallelTasksGiveTheSerialResult) {
  const Case c{32, 4, 128, {7, 90, 0}, 128, 0};
  std::mt19937 rng(3);
  const Tensors before = random_tensors(c, rng);
  Tensors serial = before, threaded = before;
  run_decode_attention(step_of(c, serial), serial_for());
  std::size_t tasks = 0;
  const ParallelFor reversed = [&](std::size_t count, const std::function<void(std::size_t)>& task) {
    tasks = count;
    for (std::size_t i = count; i-- > 0;) task(i);  // another order than the serial one
  };
  run_decode_attention(step_of(c, threaded), reversed);
  EXPECT_EQ(tasks, 3u * 4u);  // a task per sequence and key/value head
  EXPECT_EQ(serial.out, threaded.out);
  EXPECT_EQ(serial.past_key, threaded.past_key);
}

TEST(DecodeAttention, LengthsOutsideTheCacheAndUngroupedHeadsAreErrors) {
  std::mt19937 rng(4);
  const auto expect_invalid = [&](Case c, const std::function<void(DecodeAttention&)>& edit = {}) {
    Tensors t = random_tensors(c, rng);
    DecodeAttention s = step_of(c, t);
    if (edit) edit(s);
    EXPECT_THROW(run_decode_attention(s, serial_for()), InvalidInput);
  };
  expect_invalid({4, 2, 32, {-1}, 16, 0});       // a negative length
  expect_invalid({4, 2, 32, {16}, 16, 0});       // no room for the new token
  expect_invalid({4, 2, 32, {3, 70}, 64, 40});   // more cached than the past buffer holds
  expect_invalid({4, 2, 32, {3}, 16, 0}, [](DecodeAttention& s) { s.kv_heads = 3; });
  expect_invalid({4, 2, 32, {3}, 16, 0}, [](DecodeAttention& s) { s.batch = 2; });  // one length for two sequences
  expect_invalid({4, 2, 32, {3}, 16, 0}, [](DecodeAttention& s) { s.present_value = nullptr; });
}

}  // namespace
}  // namespace q3vl::kernels
