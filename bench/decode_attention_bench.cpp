// The decode attention kernel alone (kernels/decode_attention.h) with a float16 cache, as
// text.kernels.onnx runs it: one new token against every layer's cache in turn (each layer its own
// cache, so a step reads them from memory as the model does), for the 2B's heads (16 query, 8
// key/value), the 4B's (32, 8) and the 30B-A3B's (32, 4), head size 128, after 256, 1024 and 4096
// positions: microseconds per layer and the cache bytes read per second, per instruction set.
//   decode_attention_bench [--threads N]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/decode_attention.h"

using namespace q3vl::kernels;

namespace {

struct Shape {
  const char* name;
  std::int64_t heads, kv_heads, layers;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  try {
    threads = q3vl::bench::threads_flag(argc, argv, threads);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decode_attention_bench: %s\n", e.what());
    return 2;
  }
  q3vl::bench::SpinningPool pool(threads);
  const ParallelFor parallel = pool.parallel_for();
  const std::int64_t D = 128;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const Shape& shape : {Shape{"2B", 16, 8, 28}, Shape{"4B", 32, 8, 36}, Shape{"30B-A3B", 32, 4, 48}}) {
    for (const std::int64_t depth : {256, 1024, 4096}) {
      const std::int64_t capacity = depth + 64;
      const std::size_t cache_halves = static_cast<std::size_t>(shape.kv_heads * capacity * D);
      std::vector<std::vector<std::uint16_t>> keys(static_cast<std::size_t>(shape.layers)), values(keys.size());
      for (std::size_t l = 0; l < keys.size(); ++l) {
        keys[l].resize(cache_halves);
        values[l].resize(cache_halves);
        for (std::size_t i = 0; i < cache_halves; ++i) {
          keys[l][i] = static_cast<std::uint16_t>(0x3000 + rng() % 0x0C00);  // |x| in [0.125, 1)
          values[l][i] = static_cast<std::uint16_t>(0xB000 + rng() % 0x0C00);
        }
      }
      std::vector<float> query(static_cast<std::size_t>(shape.heads * D)), key(static_cast<std::size_t>(shape.kv_heads * D)), value(key.size()),
          out(query.size());
      for (auto* v : {&query, &key, &value}) {
        for (float& x : *v) x = uniform(rng);
      }
      std::vector<std::int64_t> cached = {depth};
      const double bytes_per_layer = 2.0 * static_cast<double>(shape.kv_heads * (depth + 1) * D) * 2.0;
      for (const Int4Isa isa : {Int4Isa::Best, Int4Isa::Avx2}) {
        if (!int4_isa_available(isa)) continue;
        double best = 1e9;
        for (int round = 0; round < 5; ++round) {
          const auto t0 = std::chrono::steady_clock::now();
          for (std::int64_t l = 0; l < shape.layers; ++l) {
            DecodeAttention step;
            step.batch = 1;
            step.num_heads = shape.heads;
            step.kv_heads = shape.kv_heads;
            step.head_dim = D;
            step.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
            step.query = query.data();
            step.key = key.data();
            step.value = value.data();
            step.cache = CacheType::Float16;
            step.past_key = step.present_key = keys[static_cast<std::size_t>(l)].data();
            step.past_value = step.present_value = values[static_cast<std::size_t>(l)].data();
            step.past_capacity = step.capacity = capacity;
            step.cached = cached;
            step.out = out.data();
            run_decode_attention(step, parallel, isa);
          }
          best = std::min(best, q3vl::bench::seconds_since(t0));
        }
        const double per_layer = best / static_cast<double>(shape.layers);
        std::printf("%-8s %-12s depth %5lld: %7.1f us a layer, %5.1f GB/s of cache\n", shape.name,
                    isa == Int4Isa::Best ? "best ISA" : "AVX2", static_cast<long long>(depth), per_layer * 1e6, bytes_per_layer / per_layer / 1e9);
      }
    }
  }
  return 0;
}
