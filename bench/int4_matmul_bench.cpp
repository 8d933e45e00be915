// The dense int4 kernel alone (kernels/int4_matmul.h) on a 2B decoder layer's shapes (random
// weights, block 32): a 256-token prefill through the MLP's gate/up matrix [12288, 2048] as integer
// multiply-adds per second, and decode steps through eight layers' matrices (over 300 MB, more than
// any cache) as weight bytes read per second against this machine's measured read bandwidth; the decode
// rows' arithmetic alone (a matrix in cache, one thread) and the 2B's lm_head; and the
// int8 kernel (kernels/int8_matmul.h) on the 2B vision encoder's MLP matrix [4096, 1024] for a
// 448x448 image (784 patches); per instruction set, and ONNX Runtime's MatMulNBits on the same
// prefill and vision matrices.
//   int4_matmul_bench [--threads N]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/int4_matmul.h"
#include "kernels/int8_matmul.h"

using namespace q3vl::kernels;

namespace {

struct Matrix {
  std::vector<std::uint8_t> packed;
  std::vector<float> scales;
  Int4Matrices view;
};

Matrix random_matrix(std::int64_t rows, std::int64_t cols, std::int64_t block, std::mt19937& rng) {
  Matrix m;
  m.packed.resize(static_cast<std::size_t>(rows * cols / 2));
  for (std::size_t i = 0; i < m.packed.size(); i += 4) {
    const auto r = static_cast<std::uint32_t>(rng());
    std::memcpy(m.packed.data() + i, &r, std::min<std::size_t>(4, m.packed.size() - i));
  }
  m.scales.assign(static_cast<std::size_t>(rows * cols / block), 0.01f);
  m.view = {m.packed.data(), m.scales.data(), 1, rows, cols, block};
  return m;
}

double best_seconds(int calls, const std::function<void()>& call) {
  double best = 1e9;
  for (int c = 0; c < calls; ++c) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    best = std::min(best, q3vl::bench::seconds_since(t0));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  try {
    threads = q3vl::bench::threads_flag(argc, argv, threads);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", "int4_matmul_bench", e.what());
    return 2;
  }
  const std::int64_t H = 2048, I = 6144, block = 32, prompt = 256, layers = 8;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  const Matrix gate_up = random_matrix(2 * I, H, block, rng);
  std::vector<Matrix> decode_matrices;  // per layer: qkv [4096, H], o [H, H], gate_up [2I, H], down [H, I]
  double decode_bytes = 0;
  for (std::int64_t l = 0; l < layers; ++l) {
    for (const auto& [rows, cols] : {std::pair{4096L, H}, std::pair{H, H}, std::pair{2 * I, H}, std::pair{H, I}}) {
      decode_matrices.push_back(random_matrix(rows, cols, block, rng));
      decode_bytes += static_cast<double>(rows * cols) / 2 + static_cast<double>(rows * cols / block) * 4;
    }
  }
  const double bandwidth = q3vl::bench::read_bandwidth_gbs(threads, std::size_t{1} << 30);
  std::printf("machine: read bandwidth %.1f GB/s (%d threads); a decode step over %lld layers reads %.0f MB\n", bandwidth, threads,
              static_cast<long long>(layers), decode_bytes / 1e6);
  q3vl::bench::SpinningPool pool(threads);
  const ParallelFor parallel = pool.parallel_for();
  std::vector<float> x(static_cast<std::size_t>(prompt * I)), out(static_cast<std::size_t>(prompt * 2 * I));
  for (float& v : x) v = normal(rng);
  for (const Int4Isa isa : kEveryInt4Isa) {
    if (!int4_isa_available(isa)) continue;
    const double prefill = best_seconds(isa == Int4Isa::Portable ? 1 : 3, [&] { run_int4_matmul(gate_up.view, x.data(), prompt, out.data(), parallel, isa); });
    std::printf("%-13s prefill %lld tokens x [%lld, %lld]: %.1f ms, %.1f G multiply-adds/s\n", to_string(isa).c_str(),
                static_cast<long long>(prompt), static_cast<long long>(2 * I), static_cast<long long>(H), prefill * 1e3,
                static_cast<double>(prompt * 2 * I * H) / prefill / 1e9);
    const double step = best_seconds(isa == Int4Isa::Portable ? 2 : 10, [&] {
      for (const Matrix& m : decode_matrices) run_int4_matmul(m.view, x.data(), 1, out.data(), parallel, isa);
    });
    std::printf("%-13s decode step: %.2f ms, %.1f GB/s = %.0f%% of the read bandwidth\n", to_string(isa).c_str(), step * 1e3,
                decode_bytes / step / 1e9, 100.0 * decode_bytes / step / 1e9 / bandwidth);
  }
  const auto mlas_line = [&](const char* what, std::int64_t bits, const std::vector<std::uint8_t>& packed, const std::vector<float>& scales,
                             std::int64_t rows, std::int64_t cols, const std::vector<float>& input, std::int64_t tokens) {
    const double seconds =
        q3vl::bench::onnxruntime_matmulnbits_seconds(bits, packed, scales, rows, cols, block, input, tokens, threads, 3);
    std::printf("%-13s %s %lld tokens x [%lld, %lld]: %.1f ms, %.1f G multiply-adds/s\n", "MatMulNBits", what, static_cast<long long>(tokens),
                static_cast<long long>(rows), static_cast<long long>(cols), seconds * 1e3,
                static_cast<double>(tokens * rows * cols) / seconds / 1e9);
  };
  // ONNX Runtime's own int4 kernel (MLAS, this CPU's widest path) on the same matrix and tokens.
  mlas_line("prefill", 4, gate_up.packed, gate_up.scales, 2 * I, H, std::vector<float>(x.begin(), x.begin() + prompt * H), prompt);
  // The decode rows' arithmetic alone: a [4096, H] matrix with half-float scales (as text.kernels.onnx
  // has them), 4.7 MB, held in cache and run on one thread; and the 2B's lm_head [151936, H], more
  // than any cache, on `threads`.
  for (const Int4Isa isa : {Int4Isa::Avx2, Int4Isa::AvxVnni, Int4Isa::Avx512Vnni}) {
    if (!int4_isa_available(isa)) continue;
    for (const auto& [rows, calls, label] : {std::tuple{4096L, 500, "decode rows in cache, one thread"}, std::tuple{151936L, 10, "lm_head"}}) {
      Matrix m = random_matrix(rows, H, block, rng);
      const std::vector<std::uint16_t> half(m.scales.size(), 0x2000);  // 2^-7
      m.view.scales = nullptr;
      m.view.half_scales = half.data();
      const ParallelFor run_on = rows == 4096 ? serial_for() : parallel;
      run_int4_matmul(m.view, x.data(), 1, out.data(), run_on, isa);  // warm the cache
      const double seconds = best_seconds(calls, [&] { run_int4_matmul(m.view, x.data(), 1, out.data(), run_on, isa); });
      const double bytes = static_cast<double>(rows * H) / 2 + static_cast<double>(rows * H / block) * 2;
      std::printf("%-13s %s [%lld, %lld]: %.3f ms, %.1f GB/s of weights\n", to_string(isa).c_str(), label, static_cast<long long>(rows),
                  static_cast<long long>(H), seconds * 1e3, bytes / seconds / 1e9);
    }
  }
  const std::int64_t patches = 784, vision_in = 1024, vision_out = 4096;
  std::vector<std::uint8_t> int8_values(static_cast<std::size_t>(vision_out * vision_in));
  for (std::uint8_t& b : int8_values) b = static_cast<std::uint8_t>(rng());
  const std::vector<float> int8_scales(static_cast<std::size_t>(vision_out * vision_in / block), 0.001f);
  const Int8Matrix fc1{int8_values.data(), int8_scales.data(), vision_out, vision_in, block};
  std::vector<float> patch_rows(static_cast<std::size_t>(patches * vision_in)), fc1_out(static_cast<std::size_t>(patches * vision_out));
  for (float& v : patch_rows) v = normal(rng);
  for (const Int4Isa isa : kEveryInt4Isa) {
    if (!int4_isa_available(isa)) continue;
    const double seconds = best_seconds(isa == Int4Isa::Portable ? 1 : 5, [&] { run_int8_matmul(fc1, patch_rows.data(), patches, fc1_out.data(), parallel, isa); });
    std::printf("%-13s int8 %lld patches x [%lld, %lld]: %.1f ms, %.1f G multiply-adds/s\n", to_string(isa).c_str(),
                static_cast<long long>(patches), static_cast<long long>(vision_out), static_cast<long long>(vision_in), seconds * 1e3,
                static_cast<double>(patches * vision_out * vision_in) / seconds / 1e9);
  }
  // What vision.onnx runs instead of q3vl's kernels (MatMulNBits, 8 bits): on a CPU with AVX-512 VNNI
  // MLAS's fastest path, so an AVX2 row above that beats it beats MLAS's AVX2 path too.
  mlas_line("int8", 8, int8_values, int8_scales, vision_out, vision_in, patch_rows, patches);
  return 0;
}
