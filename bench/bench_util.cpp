#include "bench_util.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <atomic>
#include <fstream>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

#include <stdlib.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "graph/graph_builder.h"
#include "ort/onnx_session.h"

namespace q3vl::bench {

double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      double kb = 0;
      status >> kb;
      return kb / 1024.0;
    }
    status.ignore(1 << 20, '\n');
  }
  return 0;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double read_bandwidth_gbs(int threads, std::size_t bytes) {
  const std::size_t count = bytes / sizeof(std::uint64_t);
  std::vector<std::uint64_t> data(count);
  std::iota(data.begin(), data.end(), 1);  // touch every page
  std::vector<double> rates;
  for (int pass = 0; pass < 7; ++pass) {
    std::vector<std::uint64_t> sums(static_cast<std::size_t>(threads));
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        const std::size_t begin = count * static_cast<std::size_t>(t) / static_cast<std::size_t>(threads);
        const std::size_t end = count * static_cast<std::size_t>(t + 1) / static_cast<std::size_t>(threads);
        std::uint64_t a = 0, b = 0, c = 0, d = 0;
        for (std::size_t i = begin; i + 3 < end; i += 4) {
          a += data[i];
          b += data[i + 1];
          c += data[i + 2];
          d += data[i + 3];
        }
        sums[static_cast<std::size_t>(t)] = a + b + c + d;
      });
    }
    for (std::thread& w : workers) w.join();
    const double s = seconds_since(start);
    volatile std::uint64_t sink = std::accumulate(sums.begin(), sums.end(), std::uint64_t{0});
    (void)sink;
    rates.push_back(static_cast<double>(bytes) / s / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];  // the median: single passes on this VM swing widely
}

namespace {

// A fresh folder of this process's own under the system's temporary folder (mkdtemp), removed with
// everything in it when done: the benchmarks' one-node models never land on a file they did not make.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "q3vl-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot make a scratch folder in " + pattern);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace

double onnxruntime_gemm_gflops(std::int64_t n, int threads) {
  const ScratchDir scratch;
  const std::filesystem::path model = scratch.path() / "gemm_peak.onnx";
  {
    graph::GraphBuilder g("gemm");
    const graph::Shape square = {n, n};
    const std::string a = g.input("a", graph::kFloat, square);
    const std::string b = g.input("b", graph::kFloat, square);
    g.output(g.op("MatMul", {a, b}), "c", graph::kFloat, square);
    g.save(model);
  }
  OnnxEnvironment env(threads);
  OnnxSession session(env, model);
  std::vector<float> a(static_cast<std::size_t>(n * n), 0.5f);
  std::vector<float> b(static_cast<std::size_t>(n * n), 0.25f);
  double best = 0;
  for (int run = 0; run < 4; ++run) {
    std::vector<Ort::Value> inputs;
    inputs.push_back(tensor_view(a, {n, n}));
    inputs.push_back(tensor_view(b, {n, n}));
    const auto start = std::chrono::steady_clock::now();
    session.run({"a", "b"}, inputs, {"c"});
    best = std::max(best, 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / seconds_since(start) / 1e9);
  }
  return best;
}

double onnxruntime_matmulnbits_seconds(std::int64_t bits, std::span<const std::uint8_t> packed,
                                       std::span<const float> scales, std::int64_t rows, std::int64_t cols, std::int64_t block,
                                       std::span<const float> x, std::int64_t tokens, int threads, int runs) {
  const ScratchDir scratch;
  const std::filesystem::path model = scratch.path() / "matmulnbits.onnx";
  {
    graph::GraphBuilder g("matmulnbits");
    const std::string input = g.input("x", graph::kFloat, {tokens, cols});
    const std::string b = g.initializer("b", graph::kUInt8, {rows, cols / block, block * bits / 8}, packed);
    const std::string s = g.initializer("scales", {rows, cols / block}, scales);
    const std::string y = g.op("MatMulNBits", {input, b, s},
                               {{"K", cols}, {"N", rows}, {"bits", bits}, {"block_size", block}, {"accuracy_level", std::int64_t{4}}},
                               graph::kMicrosoftDomain);
    g.output(y, "y", graph::kFloat, {tokens, rows});
    g.save(model);
  }
  OnnxEnvironment env(threads);
  OnnxSession session(env, model);
  std::vector<float> input(x.begin(), x.end());
  double best = 1e9;
  for (int run = 0; run < runs + 1; ++run) {  // the first run allocates: not counted
    std::vector<Ort::Value> inputs;
    inputs.push_back(tensor_view(input, {tokens, cols}));
    const auto start = std::chrono::steady_clock::now();
    session.run({"x"}, inputs, {"y"});
    if (run > 0) best = std::min(best, seconds_since(start));
  }
  return best;
}

std::int64_t number_flag(const std::string& option, const char* text, std::int64_t low, std::int64_t high) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text, text + std::strlen(text), value);
  if (error != std::errc() || *end != '\0' || value < low || value > high) {
    throw std::invalid_argument(option + " '" + text + "': expected a whole number from " + std::to_string(low) + " to " +
                                std::to_string(high));
  }
  return value;
}

int threads_flag(int argc, char** argv, int fallback) {
  int threads = fallback;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) != "--threads") throw std::invalid_argument(std::string("unknown argument '") + argv[i] + "' (only --threads N)");
    threads = static_cast<int>(number_flag("--threads", i + 1 < argc ? argv[++i] : "", 1, 256));
  }
  return threads;
}

namespace {

inline void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace

struct SpinningPool::State {
  std::atomic<std::uint64_t> generation{0};  // one more each call; helpers start when it moves
  std::atomic<bool> stopping{false};
  const std::function<void(std::size_t)>* task = nullptr;
  std::size_t count = 0;
  std::atomic<std::size_t> next{0};
  std::atomic<int> running{0};  // helpers still inside the current call

  void work() {
    for (std::size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < count;) (*task)(i);
  }
  void helper() {
    std::uint64_t seen = 0;
    for (;;) {
      // Spin a while (a decode step's calls come microseconds apart), then sleep until woken,
      // so that an idle pool leaves the cores to whatever else the bench runs.
      for (int spins = 0; generation.load(std::memory_order_acquire) == seen && spins < (1 << 16); ++spins) spin_pause();
      generation.wait(seen, std::memory_order_acquire);
      if (stopping.load(std::memory_order_acquire)) return;
      seen = generation.load(std::memory_order_acquire);
      work();
      running.fetch_sub(1, std::memory_order_release);
    }
  }
};

SpinningPool::SpinningPool(int threads) : state_(std::make_unique<State>()) {
  for (int t = 1; t < threads; ++t) helpers_.emplace_back([state = state_.get()] { state->helper(); });
}

SpinningPool::~SpinningPool() {
  state_->stopping.store(true, std::memory_order_release);
  state_->generation.fetch_add(1, std::memory_order_release);
  state_->generation.notify_all();
  for (std::thread& helper : helpers_) helper.join();
}

std::function<void(std::size_t, const std::function<void(std::size_t)>&)> SpinningPool::parallel_for() {
  return [this](std::size_t count, const std::function<void(std::size_t)>& task) {
    State& s = *state_;
    if (helpers_.empty() || count <= 1) {
      for (std::size_t i = 0; i < count; ++i) task(i);
      return;
    }
    s.task = &task;
    s.count = count;
    s.next.store(0, std::memory_order_relaxed);
    s.running.store(static_cast<int>(helpers_.size()), std::memory_order_relaxed);
    s.generation.fetch_add(1, std::memory_order_release);
    s.generation.notify_all();
    s.work();
    while (s.running.load(std::memory_order_acquire) != 0) spin_pause();
  };
}

}  // namespace q3vl::bench
