// make_test_clip OUT --codec C --frames N --fps F --size WxH [--pix-fmt P] [...]: writes a
// deterministic synthetic clip (test_pattern frames) with libavformat/libavcodec encoders; the
// container comes from OUT's extension. Exit codes: 0 written, 1 error, 2 bad command line.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

extern "C" {
#include <libavutil/log.h>
}

#include "clip_writer.h"

int main(int argc, char** argv) {
  CLI::App app{"Writes a deterministic synthetic test clip (gradients and a moving square)"};
  std::string out, size = "64x48";
  q3vl::clip::ClipSpec spec;
  std::string quality = "high";
  app.add_option("OUT", out, "output file; its extension picks the container (mp4, mov, mkv, webm, avi, y4m, ...)")
      ->required();
  app.add_option("--codec", spec.codec,
                 "ffv1, rawvideo, mjpeg, h264, h264rgb, hevc, vp8, vp9, av1, mpeg4, png, utvideo, or an encoder name")
      ->capture_default_str();
  app.add_option("--frames", spec.frames, "number of frames")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--fps", spec.fps, "frame rate: 30, 30000/1001, ntsc, ...")->capture_default_str();
  app.add_option("--size", size, "WxH")->capture_default_str();
  app.add_option("--pix-fmt", spec.pix_fmt, "the encoder's pixel format (default: the encoder's first)");
  app.add_option("--colorspace", spec.colorspace, "bt709 or bt601: convert with and tag this matrix");
  app.add_flag("--full-range", spec.full_range, "full-range YUV, tagged so");
  app.add_option("--rotate", spec.rotation_degrees, "display-matrix rotation, degrees counterclockwise");
  app.add_option("--gop", spec.gop, "keyframe interval (default: the encoder's)");
  app.add_flag("--interlaced", spec.interlaced, "interlaced coding, top field first");
  app.add_option("--quality", quality, "high (near-lossless) or default (the encoder's defaults)")
      ->check(CLI::IsMember({"high", "default"}))->capture_default_str();
  app.add_option("--threads", spec.threads, "encoder threads")->capture_default_str()->check(CLI::PositiveNumber);
  std::vector<std::string> options;
  app.add_option("--opt", options, "an encoder option KEY=VALUE (repeatable), e.g. --opt auto-alt-ref=1");
  app.add_flag("--audio-only", spec.audio_only, "a half-second tone and no video stream");
  app.add_flag("--with-audio", spec.with_audio, "an audio stream before the video stream");
  CLI11_PARSE(app, argc, argv);
  if (std::sscanf(size.c_str(), "%ldx%ld", &spec.width, &spec.height) != 2 || spec.width <= 0 || spec.height <= 0) {
    std::fprintf(stderr, "--size: expected WxH with positive sides, got %s\n", size.c_str());
    return 2;
  }
  spec.high_quality = quality == "high";
  for (const std::string& option : options) {
    const std::size_t equals = option.find('=');
    if (equals == std::string::npos || equals == 0) {
      std::fprintf(stderr, "--opt: expected KEY=VALUE, got %s\n", option.c_str());
      return 2;
    }
    spec.encoder_options.emplace_back(option.substr(0, equals), option.substr(equals + 1));
  }
  av_log_set_level(AV_LOG_ERROR);  // a command-line tool: libav's own errors may explain ours
  try {
    q3vl::clip::write_clip(out, spec);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "make_test_clip: %s\n", error.what());
    return 1;
  }
  return 0;
}
