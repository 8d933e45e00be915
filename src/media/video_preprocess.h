#pragma once
// A clip -> pixel_values_videos, video_grid_thw and the timestamps of its frame pairs, as
// transformers' Qwen3VLVideoProcessor and Qwen3VLProcessor compute them (docs/model-math.md §3.7):
// frames sampled at `fps` of the clip's time, one smart_resize for the whole clip under the clip's
// pixel budget, every frame resized like an image, an odd count padded with the last frame, frame
// pairs in the temporal slots of each patch row, and "<t seconds>" per frame pair.
//
// In two steps, so that a turn knows a clip's token count (and can refuse it) before decoding it:
// plan_video reads only the stream's header; load_video_pixels decodes the sampled frames.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "math/grid.h"
#include "media/video_decode.h"
#include "model/config.h"
#include "model/preprocessor_config.h"
#include "q3vl/video.h"

namespace q3vl {

// HF's sample_frames: n = int(total / source_fps * fps), clamped to [min_frames, max_frames] and
// to the total; indices = numpy.linspace(0, total - 1, n) rounded half to even.
std::vector<std::int64_t> sample_frame_indices(std::int64_t total_frames, double source_fps,
                                               const VideoPreprocessOptions& options);

// The video processor's smart_resize: one (height, width) for all `frames` frames, with the pixel
// budget counted over frames rounded up to a multiple of `temporal`. Throws InvalidInput like HF for
// a side under `factor` or an aspect ratio above 200.
std::pair<std::int64_t, std::int64_t> smart_resize_video(std::int64_t frames, std::int64_t height, std::int64_t width,
                                                         std::int64_t temporal, std::int64_t factor,
                                                         std::int64_t min_pixels, std::int64_t max_pixels);

// One time per frame pair: the mean of its two frames' times (index / fps), the index list padded
// with its last entry to a multiple of `temporal` (HF's _calculate_timestamps).
std::vector<double> frame_pair_timestamps(std::span<const std::int64_t> indices, double fps, std::int64_t temporal);

// "<0.3 seconds>": Python's f"<{t:.1f} seconds>".
std::string timestamp_text(double seconds);

// Where a clip's frames come from: a video file, image files, or frames in memory.
struct FrameSourceInfo {
  std::int64_t total_frames = 0;
  double fps = 0;          // 0: unknown (the plan then assumes 24 frames per second, like HF)
  std::int64_t width = 0, height = 0;
};
class FrameSource {
 public:
  virtual ~FrameSource() = default;
  virtual const FrameSourceInfo& info() const = 0;
  // Calls on_frame(index, frame) for each index (ascending), in order.
  virtual void read(std::span<const std::int64_t> indices,
                    const std::function<void(std::int64_t, RgbImage)>& on_frame) = 0;
};
// Opens the clip (a file's header is read now). Throws InvalidInput naming the clip.
std::unique_ptr<FrameSource> open_frame_source(const VideoClip& clip, const VideoLimits& limits = {});

struct VideoPlan {
  std::string source;
  std::int64_t total_frames = 0;
  double source_fps = 0;
  bool fps_assumed = false;                 // the clip did not say; 24 assumed like HF
  std::vector<std::int64_t> frame_indices;  // sampled, ascending
  std::vector<double> timestamps;           // one per frame pair
  std::int64_t height = 0, width = 0;       // every frame is resized to this
  GridThw grid;                             // (frame pairs, height / patch, width / patch)
};

// The clip's sampling, size and grid from its header alone. Throws InvalidInput naming the clip
// when HF would fail (a frame side under 32 pixels, aspect ratio over 200) and when the pixel
// budget cannot hold the sampled frames even at the smallest size (HF would exceed the budget).
VideoPlan plan_video(const FrameSource& frames, const std::string& source, const ModelConfig& config,
                     const VideoPreprocessOptions& options);

// Decodes the plan's frames, resizing each as it arrives (only the resized frames are kept), and
// returns the patch rows [grid.patches(), C*Tp*P*P] in HF's order. Throws InvalidInput when a
// frame's size differs from the header's.
std::vector<float> load_video_pixels(FrameSource& frames, const VideoPlan& plan, const ModelConfig& config,
                                     const PreprocessOptions& normalization);

}  // namespace q3vl
