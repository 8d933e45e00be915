#pragma once
// Video files -> 8-bit RGB frames, as transformers' PyAV video backend (read_video_pyav, the backend
// q3vl's golden fixtures use) sees them, decoded in-process with libavformat/libavcodec/libswscale:
//  - frame count: the stream's nb_frames from the container (PyAV's stream.frames); containers that
//    do not store it (Matroska/WebM, raw streams) get it by counting the stream's packets
//    (HF's PyAV backend fails on those files; counting is what a user expects);
//  - frame rate: the stream's avg_frame_rate (PyAV's average_rate), else its r_frame_rate, else 0
//    (the caller then assumes 24 like HF);
//  - frame i is the i-th frame the decoder outputs for the first video stream, counted from 0
//    (PyAV's enumerate(container.decode(video=0)));
//  - rgb24 conversion by libswscale with SWS_BILINEAR and the frame's own colorspace and range
//    tags (BT.601 limited range when untagged), chroma siting from its chroma_location tag and
//    interlaced frames field by field, as PyAV 17's to_ndarray(format="rgb24") on FFmpeg 8+ does
//    (media/video_rgb.h; bit-exact with it except swscale's scaling path: high bit depth, odd
//    heights of 4:2:0, where FFmpeg 5.1 rounds differently);
//  - rotation metadata is reported, not applied (HF's PyAV backend ignores it).
// Only the requested frames are converted and handed over; decoding stops after the last one.
// Only the given bytes are read: libavformat opens no other file or URL (playlists, external
// references), and a text file is refused rather than rendered as ANSI-art video.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "q3vl/image.h"

namespace q3vl {

// Guards against hostile files; exceeding one is InvalidInput naming the file and the number.
struct VideoLimits {
  std::int64_t max_frame_pixels = 8192LL * 8192;   // width * height of one frame
  std::int64_t max_total_frames = 10'000'000;       // as the header announces or counting finds
  std::int64_t max_file_bytes = 64LL << 30;
};

struct VideoStreamInfo {
  std::int64_t total_frames = 0;   // see above; > 0
  bool frames_counted = false;     // true when the container did not store it and packets were counted
  double fps = 0;                  // 0 when neither rate is known
  std::int64_t width = 0, height = 0;
  std::string container;           // libavformat's short name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
  std::string codec;               // e.g. "h264"
  double rotation_degrees = 0;     // display-matrix rotation: whole degrees counterclockwise in
                                   // [-180, 180] (PyAV's VideoFrame.rotation); not applied
};

class VideoReader {
 public:
  // Opens and probes a file. Throws InvalidInput (naming the file) when it is missing, empty, not
  // a container libavformat knows, has no video stream (e.g. audio only), announces zero frames or
  // exceeds the limits; Unsupported when the codec has no decoder in this FFmpeg build.
  explicit VideoReader(const std::filesystem::path& path, const VideoLimits& limits = {});
  // The same for bytes in memory (they must outlive the reader); `label` names them in messages.
  VideoReader(std::span<const std::uint8_t> bytes, std::string label, const VideoLimits& limits = {});
  ~VideoReader();
  VideoReader(VideoReader&&) noexcept;
  VideoReader& operator=(VideoReader&&) noexcept;

  const VideoStreamInfo& info() const;

  // Decodes from the start and calls `on_frame(index, frame)` for each frame whose index is in
  // `indices` (ascending, each < info().total_frames), in order; frame.source names the file and
  // the frame index. Throws InvalidInput when the stream ends before the last requested index
  // (truncated file, or a header announcing more frames than there are) or the decoder reports
  // corrupt data, naming the file and the frame; also for indices out of range, repeated or out
  // of order. Each call decodes from the start again (a second call reopens the demuxer).
  void read_frames(std::span<const std::int64_t> indices,
                   const std::function<void(std::int64_t index, RgbImage frame)>& on_frame);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace q3vl
