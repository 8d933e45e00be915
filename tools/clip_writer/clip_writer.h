#pragma once
// Deterministic test clips written with libavformat/libavcodec encoders (never the ffmpeg CLI):
// the frames are test_pattern(width, height, index), the container comes from the file's
// extension (mp4, mov, mkv, webm, avi, y4m, nut, ...). Tests write their clips at run time with
// this; `make_test_clip` is the same on the command line.
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace q3vl::clip {

struct ClipSpec {
  // ffv1, rawvideo, mjpeg, h264 (libx264), h264rgb (libx264rgb), hevc (libx265), vp8, vp9
  // (libvpx), av1 (libaom), mpeg4, png, utvideo, or any libavcodec encoder name.
  std::string codec = "ffv1";
  std::int64_t frames = 10;
  std::string fps = "30";            // anything av_parse_video_rate takes: "25", "30000/1001", "ntsc"
  std::int64_t width = 64, height = 48;
  std::string pix_fmt;               // the encoder's input format; empty: the encoder's first
  std::string colorspace;            // "bt709" or "bt601" converts with and tags that matrix; empty: untagged (BT.601)
  bool full_range = false;           // full-range YUV (tagged JPEG range); the yuvj formats always are
  double rotation_degrees = 0;       // display matrix, counterclockwise (what VideoStreamInfo reports)
  int gop = 0;                       // keyframe interval; 0: the encoder's default
  bool interlaced = false;           // interlaced coding, top field first (libx264, mpeg4, ffv1)
  bool high_quality = true;          // near-lossless settings for lossy codecs; false: encoder defaults
  int threads = 1;                   // encoder threads
  std::vector<std::pair<std::string, std::string>> encoder_options;  // the encoder's private options, e.g. {"auto-alt-ref", "1"}
  bool audio_only = false;           // a short tone and no video stream (wav, mka, m4a, ...)
  bool with_audio = false;           // an audio stream before the video stream
};

// Writes `path`; throws std::runtime_error naming the file and the problem (no muxer for the
// extension, no such encoder, a pixel format the encoder does not take, a muxer that refuses the
// codec, ...).
void write_clip(const std::filesystem::path& path, const ClipSpec& spec);

}  // namespace q3vl::clip
