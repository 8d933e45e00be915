#pragma once
// Small helpers shared by the benchmark programs: timing, memory bandwidth, peak FP32 GEMM rate.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace q3vl::bench {

double seconds_since(std::chrono::steady_clock::time_point start);

// Read bandwidth of this machine in GB/s: `threads` threads summing a buffer much larger than
// the caches (median of several passes).
double read_bandwidth_gbs(int threads, std::size_t bytes = std::size_t{2} << 30);

// FP32 GEMM rate of ONNX Runtime's MatMul on an n x n x n product (GFLOP/s, best of a few runs):
// the practical compute peak the vision encoder and prefill can reach here.
double onnxruntime_gemm_gflops(const std::filesystem::path& scratch_dir, std::int64_t n = 2048, int threads = 0);

// Spreads a call's `count` tasks over `threads` threads (the calling one included), as
// kernels::ParallelFor wants. Helpers are started per call (tens of microseconds each), so with
// more than one thread a kernel's times include that; ONNX Runtime's pool keeps its threads.
std::function<void(std::size_t, const std::function<void(std::size_t)>&)> threaded_for(int threads);

// This process's peak resident memory so far (VmHWM), in MB; 0 if unknown.
double peak_rss_mb();

}  // namespace q3vl::bench
