// The int4 expert kernel alone (kernels/int4_experts.h) on one 30B-A3B-shaped MoE layer (128
// experts of 2048 x 768, top 8; random weights, 377 MB, more than any cache): time per call for a
// decode step (1 token) and a 256-token prefill, per instruction set, and the expert bytes a decode
// step reads per second against this machine's measured read bandwidth.
//   int4_experts_bench [--threads N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/int4_experts.h"

using namespace q3vl::kernels;

int main(int argc, char** argv) {
  int threads = 2;
  try {
    threads = q3vl::bench::threads_flag(argc, argv, threads);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", "int4_experts_bench", e.what());
    return 2;
  }
  const std::int64_t E = 128, H = 2048, I = 768, k = 8, block = 32;
  std::mt19937 rng(1);
  std::vector<std::uint8_t> up_packed(static_cast<std::size_t>(E * 2 * I * H / 2)), down_packed(static_cast<std::size_t>(E * H * I / 2));
  for (auto* v : {&up_packed, &down_packed}) {
    for (std::size_t i = 0; i < v->size(); i += 4) {
      const auto r = static_cast<std::uint32_t>(rng());
      std::memcpy(v->data() + i, &r, std::min<std::size_t>(4, v->size() - i));
    }
  }
  std::vector<float> up_scales(static_cast<std::size_t>(E * 2 * I * H / block), 0.01f), down_scales(static_cast<std::size_t>(E * H * I / block), 0.01f);
  const ExpertLayer layer{k, true, {up_packed.data(), up_scales.data(), E, 2 * I, H, block}, {down_packed.data(), down_scales.data(), E, H, I, block}};
  const double expert_bytes = static_cast<double>(k) * (3.0 * H * I / 2 + 3.0 * H * I / block * 4);
  const double bandwidth = q3vl::bench::read_bandwidth_gbs(threads, std::size_t{1} << 30);
  std::printf("machine: read bandwidth %.1f GB/s (%d threads); a decode step reads %.1f MB of experts\n", bandwidth, threads, expert_bytes / 1e6);
  q3vl::bench::SpinningPool pool(threads);
  const ParallelFor parallel = pool.parallel_for();
  std::normal_distribution<float> normal;
  for (const Int4Isa isa : kEveryInt4Isa) {
    if (!int4_isa_available(isa)) continue;
    for (const std::int64_t tokens : {std::int64_t{1}, std::int64_t{256}}) {
      std::vector<float> x(static_cast<std::size_t>(tokens * H)), logits(static_cast<std::size_t>(tokens * E)), out(x.size());
      const int calls = tokens == 1 ? (isa == Int4Isa::Portable ? 20 : 200) : (isa == Int4Isa::Portable ? 1 : 3);
      std::vector<double> times;
      for (int c = 0; c < calls; ++c) {
        for (float& v : x) v = normal(rng);
        for (float& v : logits) v = normal(rng);  // other experts each call: nothing stays cached
        const auto t0 = std::chrono::steady_clock::now();
        run_int4_experts(layer, x.data(), logits.data(), tokens, out.data(), parallel, isa);
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(times.begin(), times.end());
      const double best = times.front(), median = times[times.size() / 2];
      if (tokens == 1) {
        // The same experts every call: their 24 MB mostly stay in the caches, so this is the
        // kernel's compute rate rather than the memory's.
        double cached = 1e9;
        for (int c = 0; c < calls; ++c) {
          const auto t0 = std::chrono::steady_clock::now();
          run_int4_experts(layer, x.data(), logits.data(), tokens, out.data(), parallel, isa);
          cached = std::min(cached, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        std::printf("%-13s decode step, same experts each call: %.3f ms\n", to_string(isa).c_str(), cached * 1e3);
        std::printf("%-13s decode step: %.3f ms (best of %d; median %.3f ms), %.1f GB/s of experts = %.0f%% of the read bandwidth (median %.0f%%)\n",
                    to_string(isa).c_str(), best * 1e3, calls, median * 1e3, expert_bytes / best / 1e9, 100.0 * expert_bytes / best / 1e9 / bandwidth,
                    100.0 * expert_bytes / median / 1e9 / bandwidth);
      } else {
        std::printf("%-13s prefill %lld tokens: %.1f ms, %.2f ms per token\n", to_string(isa).c_str(), static_cast<long long>(tokens), best * 1e3,
                    best * 1e3 / static_cast<double>(tokens));
      }
    }
  }
  return 0;
}
