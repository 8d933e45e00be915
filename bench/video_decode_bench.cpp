// Video decoding speed on what Qwen3-VL's video processor asks of a clip: the frames it samples at
// 2 fps (indices = round-half-even of linspace(0, total - 1, n), n = total / fps * 2) of a 60 s
// 1280x720 30 fps H.264 clip, against decoding and converting every frame. Writes the clip with
// the test-clip writer (libx264 defaults: CRF 23, keyframe every 250 frames) unless one is given.
//   video_decode_bench [CLIP] [--seconds N] [--sample-fps F] [--runs N] [--work DIR]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "clip_writer.h"
#include "media/video_decode.h"
#include "q3vl/error.h"

namespace {

using namespace q3vl;

struct Options {
  std::string clip;
  int seconds = 60;
  double sample_fps = 2.0;
  int runs = 1;
  std::filesystem::path work = std::filesystem::temp_directory_path() / "q3vl-bench";
};

Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--seconds" && has_value) {
      options.seconds = std::atoi(argv[++i]);
    } else if (arg == "--sample-fps" && has_value) {
      options.sample_fps = std::atof(argv[++i]);
    } else if (arg == "--runs" && has_value) {
      options.runs = std::atoi(argv[++i]);
    } else if (arg == "--work" && has_value) {
      options.work = argv[++i];
    } else if (!arg.starts_with("--") && options.clip.empty()) {
      options.clip = arg;
    } else {
      std::fprintf(stderr, "usage: video_decode_bench [CLIP] [--seconds N] [--sample-fps F] [--runs N] [--work DIR]\n");
      std::exit(2);
    }
  }
  if (options.seconds <= 0 || options.sample_fps <= 0 || options.runs <= 0) {
    std::fprintf(stderr, "video_decode_bench: --seconds, --sample-fps and --runs must be positive\n");
    std::exit(2);
  }
  return options;
}

// numpy.linspace(0, total - 1, count) rounded half to even, as torch/numpy round() do.
std::vector<std::int64_t> sampled_indices(std::int64_t total, double fps, double sample_fps) {
  const auto count = std::clamp<std::int64_t>(static_cast<std::int64_t>(static_cast<double>(total) / fps * sample_fps),
                                              1, total);
  std::vector<std::int64_t> indices;
  const double step = count > 1 ? static_cast<double>(total - 1) / static_cast<double>(count - 1) : 0.0;
  for (std::int64_t i = 0; i < count; ++i) {
    const double value = i + 1 == count && count > 1 ? static_cast<double>(total - 1) : static_cast<double>(i) * step;
    indices.push_back(static_cast<std::int64_t>(std::nearbyint(value)));  // the default rounding: half to even
  }
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  return indices;
}

struct Run {
  double ms = 0;
  std::int64_t converted = 0;
};

Run decode(const std::string& clip, const std::vector<std::int64_t>& indices) {
  const auto start = std::chrono::steady_clock::now();
  VideoReader reader{std::filesystem::path(clip)};
  Run run;
  reader.read_frames(indices, [&](std::int64_t, RgbImage) { ++run.converted; });
  run.ms = bench::seconds_since(start) * 1e3;
  return run;
}

void report(const char* label, const std::string& clip, const std::vector<std::int64_t>& indices, int runs) {
  std::vector<double> times;
  Run run;
  for (int i = 0; i < runs; ++i) {
    run = decode(clip, indices);
    times.push_back(run.ms);
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  std::printf("%s: %.0f ms (median of %d), frames decoded %lld, converted %lld, %.2f ms per converted frame, "
              "peak RSS so far %.0f MB\n",
              label, median, runs, static_cast<long long>(indices.back() + 1), static_cast<long long>(run.converted),
              median / static_cast<double>(run.converted), bench::peak_rss_mb());
}

void run(const Options& options) {
  std::string clip = options.clip;
  if (clip.empty()) {
    std::filesystem::create_directories(options.work);
    clip = (options.work / ("h264_1280x720_30fps_" + std::to_string(options.seconds) + "s.mp4")).string();
    if (!std::filesystem::exists(clip)) {
      clip::ClipSpec spec;
      spec.codec = "h264";
      spec.width = 1280;
      spec.height = 720;
      spec.fps = "30";
      spec.frames = 30LL * options.seconds;
      spec.high_quality = false;  // libx264's defaults, its default GOP included
      spec.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      const auto start = std::chrono::steady_clock::now();
      clip::write_clip(clip, spec);
      std::printf("wrote %s in %.1f s\n", clip.c_str(), bench::seconds_since(start));
    }
  }
  const auto open_start = std::chrono::steady_clock::now();
  VideoReader reader{std::filesystem::path(clip)};
  const double open_ms = bench::seconds_since(open_start) * 1e3;
  const VideoStreamInfo& info = reader.info();
  std::printf("%s: %s %lldx%lld, %lld frames at %.3f fps (%s), %.1f MB; open %.1f ms; %u hardware threads\n",
              clip.c_str(), info.codec.c_str(), static_cast<long long>(info.width), static_cast<long long>(info.height),
              static_cast<long long>(info.total_frames), info.fps, info.frames_counted ? "counted" : "from the header",
              static_cast<double>(std::filesystem::file_size(clip)) / 1e6, open_ms, std::thread::hardware_concurrency());
  const std::vector<std::int64_t> sampled = sampled_indices(info.total_frames, info.fps, options.sample_fps);
  std::vector<std::int64_t> every(static_cast<std::size_t>(info.total_frames));
  for (std::int64_t i = 0; i < info.total_frames; ++i) every[static_cast<std::size_t>(i)] = i;
  std::printf("sampled at %.3g fps: %zu indices, %lld to %lld\n", options.sample_fps, sampled.size(),
              static_cast<long long>(sampled.front()), static_cast<long long>(sampled.back()));
  report("sampled frames", clip, sampled, options.runs);
  report("every frame (baseline)", clip, every, options.runs);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    run(parse_options(argc, argv));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "video_decode_bench: %s\n", error.what());
    return 1;
  }
  return 0;
}
