#pragma once
// Small helpers shared by the benchmark programs: timing, memory bandwidth, peak FP32 GEMM rate.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace q3vl::bench {

double seconds_since(std::chrono::steady_clock::time_point start);

// Read bandwidth of this machine in GB/s: `threads` threads summing a buffer much larger than
// the caches (median of several passes).
double read_bandwidth_gbs(int threads, std::size_t bytes = std::size_t{2} << 30);

// FP32 GEMM rate of ONNX Runtime's MatMul on an n x n x n product (GFLOP/s, best of a few runs):
// the practical compute peak the vision encoder and prefill can reach here.
// (This and the next write their one-node model to a fresh temporary folder, removed after.)
double onnxruntime_gemm_gflops(std::int64_t n = 2048, int threads = 0);

// Best seconds of `runs` calls of ONNX Runtime's MatMulNBits (accuracy level 4: activations
// quantized to int8, as q3vl's kernels do) on x [tokens, cols] with B in its `bits` 4 or 8 layout
// ([rows, cols / block, block * bits / 8] bytes, no zero points) and float scales [rows, cols / block]:
// the rate q3vl's own int4/int8 kernels are measured against, on this CPU's MLAS path.
double onnxruntime_matmulnbits_seconds(std::int64_t bits, std::span<const std::uint8_t> packed,
                                       std::span<const float> scales, std::int64_t rows, std::int64_t cols, std::int64_t block,
                                       std::span<const float> x, std::int64_t tokens, int threads, int runs);

// A pool of `threads - 1` helper threads kept for the pool's life, spinning between calls as ONNX
// Runtime's intra-op pool does, so that a kernel's times hold no thread starts. parallel_for() spreads a
// call's `count` tasks over the helpers and the calling thread, as kernels::ParallelFor wants; the
// pool must outlive it. One caller at a time.
class SpinningPool {
 public:
  explicit SpinningPool(int threads);
  ~SpinningPool();
  SpinningPool(const SpinningPool&) = delete;
  SpinningPool& operator=(const SpinningPool&) = delete;
  std::function<void(std::size_t, const std::function<void(std::size_t)>&)> parallel_for();

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::vector<std::thread> helpers_;
};

// A whole decimal number in [low, high] given to `option`, or std::invalid_argument naming both.
std::int64_t number_flag(const std::string& option, const char* text, std::int64_t low, std::int64_t high);

// The kernel benches' only flag, `--threads N` (1 to 256), or `fallback` where it is absent.
int threads_flag(int argc, char** argv, int fallback);

// This process's peak resident memory so far (VmHWM), in MB; 0 if unknown.
double peak_rss_mb();

}  // namespace q3vl::bench
