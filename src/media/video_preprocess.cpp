#include "media/video_preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "media/image_preprocess.h"
#include "q3vl/error.h"

namespace q3vl {
namespace {

std::string size_text(std::int64_t height, std::int64_t width) {
  return std::to_string(width) + "x" + std::to_string(height);
}

std::string number_text(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

}  // namespace

std::vector<std::int64_t> sample_frame_indices(std::int64_t total_frames, double source_fps,
                                               const VideoPreprocessOptions& options) {
  if (total_frames <= 0) throw InvalidInput("a clip of " + std::to_string(total_frames) + " frames has nothing to sample");
  if (!(source_fps > 0) || !std::isfinite(source_fps)) {
    throw InvalidInput("a clip's frame rate must be positive, not " + number_text(source_fps));
  }
  // Python: int(total_num_frames / metadata.fps * fps), then min(max(n, min_frames), max_frames, total).
  const double wanted = static_cast<double>(total_frames) / source_fps * options.fps;
  std::int64_t count = wanted >= 9.0e18 ? total_frames : static_cast<std::int64_t>(std::trunc(wanted));
  count = std::min({std::max(count, options.min_frames), options.max_frames, total_frames});
  // numpy.linspace(0, total - 1, count): i * step with the last element set to the stop exactly,
  // then .round() (half to even, nearbyint in the default rounding mode).
  std::vector<std::int64_t> indices(static_cast<std::size_t>(count));
  const double stop = static_cast<double>(total_frames - 1);
  const double step = count > 1 ? stop / static_cast<double>(count - 1) : 0.0;
  for (std::int64_t i = 0; i < count; ++i) {
    const double value = i + 1 == count && count > 1 ? stop : static_cast<double>(i) * step;
    indices[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(std::nearbyint(value));
  }
  return indices;
}

std::pair<std::int64_t, std::int64_t> smart_resize_video(std::int64_t frames, std::int64_t height, std::int64_t width,
                                                         std::int64_t temporal, std::int64_t factor,
                                                         std::int64_t min_pixels, std::int64_t max_pixels) {
  if (height < factor || width < factor) {
    throw InvalidInput("frames of " + size_text(height, width) + " pixels: both sides must be at least " +
                       std::to_string(factor) + " (Qwen's video smart_resize rejects smaller ones)");
  }
  const auto h = static_cast<double>(height), w = static_cast<double>(width);
  if (std::max(h, w) / std::min(h, w) > 200) {
    throw InvalidInput("frames of " + size_text(height, width) + " pixels: the aspect ratio must be at most 200");
  }
  return fit_pixel_budget(height, width, factor, min_pixels, max_pixels, frames, temporal);
}

std::vector<double> frame_pair_timestamps(std::span<const std::int64_t> indices, double fps, std::int64_t temporal) {
  std::vector<std::int64_t> padded(indices.begin(), indices.end());
  while (!padded.empty() && padded.size() % static_cast<std::size_t>(temporal) != 0) padded.push_back(padded.back());
  std::vector<double> times;
  for (std::size_t i = 0; i < padded.size(); i += static_cast<std::size_t>(temporal)) {
    const double first = static_cast<double>(padded[i]) / fps;
    const double last = static_cast<double>(padded[i + static_cast<std::size_t>(temporal) - 1]) / fps;
    times.push_back((first + last) / 2);
  }
  return times;
}

std::string timestamp_text(double seconds) {
  // glibc's %.1f rounds the exact binary value correctly, like Python's format(t, ".1f").
  char text[64];
  std::snprintf(text, sizeof text, "<%.1f seconds>", seconds);
  return text;
}

VideoPlan plan_video(const FrameSource& frames, const std::string& source, const ModelConfig& config,
                     const VideoPreprocessOptions& options) {
  const FrameSourceInfo& info = frames.info();
  const VisionConfig& vision = config.vision;
  VideoPlan plan;
  plan.source = source;
  plan.total_frames = info.total_frames;
  plan.fps_assumed = !(info.fps > 0) || !std::isfinite(info.fps);
  plan.source_fps = plan.fps_assumed ? 24.0 : info.fps;
  try {
    plan.frame_indices = sample_frame_indices(info.total_frames, plan.source_fps, options);
    const std::int64_t factor = vision.patch_size * vision.spatial_merge_size;
    const std::int64_t temporal = vision.temporal_patch_size;
    const auto count = static_cast<std::int64_t>(plan.frame_indices.size());
    std::tie(plan.height, plan.width) = smart_resize_video(count, info.height, info.width, temporal, factor,
                                                           options.pixels.min_pixels, options.pixels.max_pixels);
    plan.grid = {(count + temporal - 1) / temporal, plan.height / vision.patch_size, plan.width / vision.patch_size};
    if (plan.grid.t * temporal * plan.height * plan.width > options.pixels.max_pixels) {
      // HF clamps every side to the factor and exceeds the budget; a user who set it wants to know.
      const std::int64_t per_token = vision.patch_size * vision.patch_size * vision.spatial_merge_size *
                                     vision.spatial_merge_size * temporal;
      throw InvalidInput(std::to_string(count) + " sampled frames need at least " +
                         std::to_string(plan.grid.tokens()) + " tokens at the smallest frame size (" +
                         size_text(plan.height, plan.width) + "), more than the clip budget of " +
                         std::to_string(options.pixels.max_pixels / per_token) +
                         " tokens; lower --fps or --max-frames, or raise --max-video-tokens");
    }
    plan.timestamps = frame_pair_timestamps(plan.frame_indices, plan.source_fps, temporal);
  } catch (const InvalidInput& e) {
    throw InvalidInput(source + ": " + e.what());
  }
  return plan;
}

std::vector<float> load_video_pixels(FrameSource& frames, const VideoPlan& plan, const ModelConfig& config,
                                     const PreprocessOptions& normalization) {
  const FrameSourceInfo& info = frames.info();
  std::vector<RgbImage> resized;
  resized.reserve(plan.frame_indices.size());
  frames.read(plan.frame_indices, [&](std::int64_t index, RgbImage frame) {
    if (frame.width != info.width || frame.height != info.height) {
      throw InvalidInput(plan.source + ": frame " + std::to_string(index) + " is " + size_text(frame.height, frame.width) +
                         " pixels, the clip's first is " + size_text(info.height, info.width) +
                         " (a clip's frames must all have one size)");
    }
    // Resized as it arrives: only the clip-sized frames are held, never the decoded originals.
    if (frame.height == plan.height && frame.width == plan.width) {
      resized.push_back(std::move(frame));
    } else {
      resized.push_back(resize_bicubic_antialias(frame, plan.height, plan.width));
    }
  });
  if (resized.size() != plan.frame_indices.size()) {
    throw InvalidInput(plan.source + ": " + std::to_string(resized.size()) + " of the " +
                       std::to_string(plan.frame_indices.size()) + " sampled frames could be read");
  }
  std::vector<const RgbImage*> pointers;
  for (const RgbImage& frame : resized) pointers.push_back(&frame);
  return patchify_frames(pointers, plan.grid, config.vision, normalization);
}

}  // namespace q3vl
