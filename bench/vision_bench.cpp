// Vision encoder speed: ms per image at 448x448 and 896x896 through a package's vision.onnx,
// the GFLOP/s that is, and that figure against this machine's measured FP32 GEMM rate; then 20
// small images in one call against one, and the process's peak RSS. With --reference, instead the
// error of this package's features against another's (e.g. int8 against fp32 vision).
// --encoder picks vision.kernels.onnx or vision.onnx whatever this CPU is (default: what q3vl run picks).
//   vision_bench PACKAGE [--runs N (0: first pass only)] [--threads N] [--no-prepack] [--side PIXELS]... [--reference PACKAGE]
//                [--encoder auto|kernels|onnx]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/int4_matrices.h"
#include "package/kernel_graphs.h"
#include "engine/vision_encoder.h"
#include "package/format.h"
#include "package/package.h"
#include "q3vl/error.h"

namespace {

using namespace q3vl;

// Multiply-adds x2 of one pass over `patches` patches (one image, one attention segment).
double vision_flops(const ModelConfig& c, double patches) {
  const double D = static_cast<double>(c.vision.hidden_size);
  const double I = static_cast<double>(c.vision.intermediate_size);
  const double H = static_cast<double>(c.text.hidden_size);
  const double N = patches;
  double flops = 2 * N * static_cast<double>(c.vision.patch_input_size()) * D;
  const double block = 2 * N * D * 3 * D + 2 * 2 * N * N * D + 2 * N * D * D + 2 * 2 * N * D * I;
  flops += block * static_cast<double>(c.vision.depth);
  const double merger = 2 * (N / 4) * (16 * D * D + 4 * D * H);
  flops += merger * (1 + static_cast<double>(c.vision.deepstack_visual_indexes.size()));
  return flops;
}

// Cosine similarity and max relative error (largest |difference| over the largest |reference|)
// of the merged features and of each DeepStack level, on one 448x448 image of random pixels.
void report_error_against(const VisionEncoder& encoder, const VisionEncoder& reference, const ModelConfig& config,
                          std::mt19937& rng) {
  const std::int64_t grid = 448 / config.vision.patch_size;
  const std::vector<GridThw> grids = {{1, grid, grid}};
  std::uniform_real_distribution<float> pixel(-1.0f, 1.0f);
  std::vector<float> pixels(static_cast<std::size_t>(grid * grid * config.vision.patch_input_size()));
  for (float& p : pixels) p = pixel(rng);
  const SplitVisualFeatures ours = split_visual_features(encoder.encode(pixels, grids), config.text.hidden_size);
  const SplitVisualFeatures theirs = split_visual_features(reference.encode(pixels, grids), config.text.hidden_size);
  auto report = [](const char* what, std::span<const float> a, std::span<const float> b) {
    double dot = 0, aa = 0, bb = 0, max_diff = 0, max_ref = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      dot += static_cast<double>(a[i]) * b[i];
      aa += static_cast<double>(a[i]) * a[i];
      bb += static_cast<double>(b[i]) * b[i];
      max_diff = std::max(max_diff, static_cast<double>(std::abs(a[i] - b[i])));
      max_ref = std::max(max_ref, static_cast<double>(std::abs(b[i])));
    }
    std::printf("%-18s cosine %.6f, max relative error %.4f\n", what, dot / std::sqrt(aa * bb), max_diff / max_ref);
  };
  report("merged features", ours.merged, theirs.merged);
  const std::size_t level = ours.merged.size();
  for (std::int64_t k = 0; k < ours.levels; ++k) {
    const std::string name = "deepstack level " + std::to_string(k);
    report(name.c_str(), std::span<const float>(ours.deepstack).subspan(k * level, level),
           std::span<const float>(theirs.deepstack).subspan(k * level, level));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: vision_bench PACKAGE [--runs N] [--threads N] [--no-prepack] [--side PIXELS] [--reference PACKAGE] "
                         "[--encoder auto|kernels|onnx]\n");
    return 2;
  }
  int runs = 3;
  int threads = 0;
  bool prepack = true;
  std::string reference;  // another package's vision.onnx (fp32) to measure this one's error against
  std::vector<std::int64_t> sides = {448, 896};
  std::string encoder_choice = "auto";
  bool sides_given = false;
  // A whole decimal number in [low, high], or a usage error naming the option.
  auto number = [&](int& i, std::int64_t low, std::int64_t high) -> std::int64_t {
    const std::string option = argv[i];
    return bench::number_flag(option, i + 1 < argc ? argv[++i] : "", low, high);
  };
  try {
    for (int i = 2; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--no-prepack") {
        prepack = false;
      } else if (arg == "--encoder" && i + 1 < argc) {
        encoder_choice = argv[++i];
        if (encoder_choice != "auto" && encoder_choice != "kernels" && encoder_choice != "onnx") {
          throw std::invalid_argument("--encoder: auto, kernels or onnx, not " + encoder_choice);
        }
      } else if (arg == "--reference" && i + 1 < argc) {
        reference = argv[++i];
      } else if (arg == "--side") {  // may repeat: the sides in that order
        if (!sides_given) sides.clear();
        sides_given = true;
        sides.push_back(number(i, 32, 4096));
        if (sides.back() % 32 != 0) throw std::invalid_argument("--side: a multiple of 32 pixels (two merged patches)");
      } else if (arg == "--runs") {
        runs = static_cast<int>(number(i, 0, 100));  // 0: the first pass only (the largest images take minutes a pass)
      } else if (arg == "--threads") {
        threads = static_cast<int>(number(i, 0, 256));
      } else {
        throw std::invalid_argument("unknown argument " + arg);
      }
    }
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "vision_bench: %s\n", e.what());
    return 2;
  }
  try {
    const Package package = Package::open(argv[1]);
    const ModelConfig& config = package.config();
    OnnxEnvironment env(threads);
    SessionOptions session_options;
    session_options.prepack_weights = prepack;
    // By default what q3vl run loads: vision.kernels.onnx where it is valid and this CPU has its
    // kernels. "kernels" takes it on any CPU (to weigh q3vl's AVX2 kernels against MLAS's there).
    const bool fast_int8 = encoder_choice == "kernels" || kernels::int8_kernels_fast();
    const VisionModelChoice chosen = choose_vision_model(package, encoder_choice != "onnx", fast_int8);
    if (encoder_choice == "kernels" && !chosen.kernels) {
      throw InvalidInput(std::string(argv[1]) + ": no usable vision.kernels.onnx" + (chosen.note.empty() ? " (the package has none)" : " (" + chosen.note + ")"));
    }
    const auto load_start = std::chrono::steady_clock::now();
    VisionEncoder encoder(env, chosen.model, config, session_options);
    std::printf("%s load (prepack %s): %.0f ms%s%s\n", chosen.model.filename().string().c_str(), prepack ? "on" : "off",
                bench::seconds_since(load_start) * 1000, chosen.note.empty() ? "" : "; ", chosen.note.c_str());
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> pixel(-1.0f, 1.0f);
    if (!reference.empty()) {
      const Package reference_package = Package::open(reference);
      if (q3vl::package::visual_channel_width(reference_package.config()) != q3vl::package::visual_channel_width(config) ||
          reference_package.config().vision.patch_input_size() != config.vision.patch_input_size()) {
        throw InvalidInput(reference + ": not the same model as " + argv[1] + " (other vision or text sizes)");
      }
      VisionEncoder reference_encoder(env, reference_package.vision_model(), config);
      report_error_against(encoder, reference_encoder, config, rng);
      return 0;
    }
    const double peak = bench::onnxruntime_gemm_gflops(2048, threads);
    std::printf("machine: ONNX Runtime FP32 GEMM 2048^3: %.1f GFLOP/s (the practical peak)\n", peak);
    for (std::int64_t side : sides) {
      const std::int64_t grid = side / config.vision.patch_size;
      const std::vector<GridThw> grids = {{1, grid, grid}};
      std::vector<float> pixels(static_cast<std::size_t>(grid * grid * config.vision.patch_input_size()));
      for (float& p : pixels) p = pixel(rng);
      // The first pass (what a `q3vl run` pays): session initialization, allocations, first reads of the weights.
      const auto first_start = std::chrono::steady_clock::now();
      encoder.encode(pixels, grids);
      const double first = bench::seconds_since(first_start);
      double best = 1e30;
      for (int r = 0; r < runs; ++r) {
        const auto start = std::chrono::steady_clock::now();
        encoder.encode(pixels, grids);
        best = std::min(best, bench::seconds_since(start));
      }
      const double flops = vision_flops(config, static_cast<double>(grid * grid));
      if (runs == 0) {
        std::printf("vision %lldx%lld (%lld patches, %lld tokens): first pass %.0f ms, %.1f GFLOP (%.1f GFLOP/s)\n",
                    static_cast<long long>(side), static_cast<long long>(side), static_cast<long long>(grid * grid),
                    static_cast<long long>(grid * grid / 4), first * 1000, flops / 1e9, flops / first / 1e9);
        continue;
      }
      std::printf("vision %lldx%lld (%lld patches, %lld tokens): %.0f ms/image (first pass %.0f ms), %.1f GFLOP (%.1f GFLOP/s, %.0f%% of the FP32 GEMM peak)\n",
                  static_cast<long long>(side), static_cast<long long>(side), static_cast<long long>(grid * grid),
                  static_cast<long long>(grid * grid / 4), best * 1000, first * 1000, flops / 1e9, flops / best / 1e9,
                  100.0 * flops / best / 1e9 / peak);
    }
    std::printf("peak RSS after the single images: %.0f MB\n", bench::peak_rss_mb());
    if (runs == 0) return 0;  // first passes only: no timing of many images against one
    // Attention stays within each image: 20 images in one call cost 20 times one image, not more.
    const std::int64_t grid = 224 / config.vision.patch_size;
    const std::size_t image_values = static_cast<std::size_t>(grid * grid * config.vision.patch_input_size());
    auto time_images = [&](int count) {
      const std::vector<GridThw> grids(static_cast<std::size_t>(count), GridThw{1, grid, grid});
      std::vector<float> pixels(image_values * static_cast<std::size_t>(count));
      for (float& p : pixels) p = pixel(rng);
      encoder.encode(pixels, grids);
      double best = 1e30;
      for (int r = 0; r < runs; ++r) {
        const auto start = std::chrono::steady_clock::now();
        encoder.encode(pixels, grids);
        best = std::min(best, bench::seconds_since(start));
      }
      return best * 1000 / count;
    };
    const double one = time_images(1);
    const double twenty = time_images(20);
    std::printf("vision 224x224, 1 image per call: %.0f ms/image; 20 images in one call: %.0f ms/image (%.2fx)\n", one, twenty,
                twenty / one);
    std::printf("peak RSS after 20 images: %.0f MB\n", bench::peak_rss_mb());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vision_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
