// Video decoding (media/video_decode.h) on clips written at test time by tools/clip_writer: every
// container x codec pair Debian 12's FFmpeg 5.1 writes and reads, bit-exact RGB for lossless
// RGB-native clips, a small mean error for lossy ones (the colour conversion is right), counted
// frame numbers where the container stores none, and hostile or broken files rejected with
// messages that name the file and the problem. No binary fixtures: the clips are deterministic.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "clip_writer.h"
#include "media/video_decode.h"
#include "q3vl/error.h"
#include "support/test_support.h"
#include "test_pattern.h"

namespace q3vl {
namespace {

using clip::ClipSpec;
using clip::test_pattern;
using clip::write_clip;
using std::filesystem::path;

ClipSpec make_spec(const std::string& codec, std::int64_t frames, std::int64_t width = 64, std::int64_t height = 48,
                   const std::string& pix_fmt = "") {
  ClipSpec spec;
  spec.codec = codec;
  spec.frames = frames;
  spec.width = width;
  spec.height = height;
  spec.pix_fmt = pix_fmt;
  spec.fps = "25";
  return spec;
}

path write(const test::TempDir& dir, const std::string& name, const ClipSpec& spec) {
  const path file = dir / name;
  write_clip(file, spec);
  return file;
}

std::vector<std::uint8_t> read_bytes(const path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const path& file, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

struct Frames {
  std::vector<std::int64_t> indices;
  std::vector<RgbImage> images;
};

Frames read(VideoReader& reader, const std::vector<std::int64_t>& indices) {
  Frames frames;
  reader.read_frames(indices, [&](std::int64_t index, RgbImage image) {
    frames.indices.push_back(index);
    frames.images.push_back(std::move(image));
  });
  return frames;
}

std::vector<std::int64_t> all_indices(std::int64_t count) {
  std::vector<std::int64_t> indices;
  for (std::int64_t i = 0; i < count; ++i) indices.push_back(i);
  return indices;
}

double mean_abs_diff(const RgbImage& a, const RgbImage& b) {
  if (a.width != b.width || a.height != b.height) return 1e9;
  double sum = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int{a.pixels[i]} - int{b.pixels[i]});
  return sum / static_cast<double>(a.pixels.size());
}

// The message of the q3vl::Error `action` throws ("" when it throws none).
std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

// Frame `index` of a lossy clip: close to its own pattern, and closer to it than to its neighbours'
// (so it is that frame, not the one before or after).
void expect_frame_is(const RgbImage& frame, std::int64_t index, double tolerance, const std::string& what) {
  const double own = mean_abs_diff(frame, test_pattern(frame.width, frame.height, index));
  EXPECT_LT(own, tolerance) << what << " frame " << index;
  for (const std::int64_t other : {index - 1, index + 1}) {
    if (other < 0) continue;
    EXPECT_LT(own, mean_abs_diff(frame, test_pattern(frame.width, frame.height, other)))
        << what << " frame " << index << " looks more like frame " << other;
  }
}

// Every container x codec pair Debian 12's FFmpeg 5.1 both writes and reads back (the pairs its
// muxers refuse are left out: e.g. FFV1, raw video and Ut Video in MP4, VP8/VP9/AV1 in MOV, raw
// video in Matroska, HEVC in AVI, which it writes but reads back as raw video).
struct Pair {
  const char* container;
  const char* codec;
};
constexpr Pair kPairs[] = {
    {"mp4", "mjpeg"}, {"mp4", "h264"}, {"mp4", "hevc"}, {"mp4", "vp9"}, {"mp4", "av1"}, {"mp4", "mpeg4"},
    {"mp4", "png"},
    {"mov", "ffv1"}, {"mov", "rawvideo"}, {"mov", "mjpeg"}, {"mov", "h264"}, {"mov", "hevc"}, {"mov", "mpeg4"},
    {"mov", "png"}, {"mov", "utvideo"},
    {"mkv", "ffv1"}, {"mkv", "mjpeg"}, {"mkv", "h264"}, {"mkv", "hevc"}, {"mkv", "vp8"}, {"mkv", "vp9"},
    {"mkv", "av1"}, {"mkv", "mpeg4"}, {"mkv", "png"}, {"mkv", "utvideo"},
    {"webm", "vp8"}, {"webm", "vp9"}, {"webm", "av1"},
    {"avi", "ffv1"}, {"avi", "rawvideo"}, {"avi", "mjpeg"}, {"avi", "h264"}, {"avi", "vp8"}, {"avi", "vp9"},
    {"avi", "av1"}, {"avi", "mpeg4"}, {"avi", "png"}, {"avi", "utvideo"},
    {"nut", "ffv1"}, {"nut", "rawvideo"}, {"nut", "h264"}, {"nut", "vp9"},
    {"y4m", "rawvideo"},
};

TEST(VideoDecode, EveryContainerAndCodecReportsAndDecodesTheRequestedFrames) {
  test::TempDir dir;
  int checked = 0;
  for (const Pair& pair : kPairs) {
    const std::string what = std::string(pair.codec) + " in " + pair.container;
    SCOPED_TRACE(what);
    const path file = write(dir, std::string(pair.codec) + "." + pair.container, make_spec(pair.codec, 12));
    VideoReader reader(file);
    const VideoStreamInfo& info = reader.info();
    const std::string container = pair.container;
    EXPECT_EQ(info.total_frames, 12);
    // Matroska, WebM, NUT and Y4M store no frame count; MP4, MOV and AVI do.
    EXPECT_EQ(info.frames_counted, container == "mkv" || container == "webm" || container == "nut" || container == "y4m");
    EXPECT_DOUBLE_EQ(info.fps, 25.0);
    EXPECT_EQ(info.width, 64);
    EXPECT_EQ(info.height, 48);
    EXPECT_EQ(info.codec, std::string(pair.codec));
    EXPECT_EQ(info.rotation_degrees, 0);
    const Frames frames = read(reader, {0, 3, 4, 11});
    ASSERT_EQ(frames.indices, (std::vector<std::int64_t>{0, 3, 4, 11}));
    for (std::size_t i = 0; i < frames.images.size(); ++i) {
      const RgbImage& frame = frames.images[i];
      EXPECT_EQ(frame.width, 64);
      EXPECT_EQ(frame.height, 48);
      EXPECT_EQ(frame.source, file.string() + " frame " + std::to_string(frames.indices[i]));
      expect_frame_is(frame, frames.indices[i], 6.0, what);
    }
    ++checked;
  }
  EXPECT_EQ(checked, 43);
}

// Lossless clips in RGB-native pixel formats: libswscale's conversion to rgb24 is a reshuffle,
// so every frame equals the pattern byte for byte (odd sizes included).
TEST(VideoDecode, LosslessRgbClipsDecodeBitExactly) {
  test::TempDir dir;
  struct Case {
    const char* name;
    const char* codec;
    const char* pix_fmt;
  };
  const Case cases[] = {
      {"ffv1_bgr0.mkv", "ffv1", "bgr0"},       {"ffv1_bgra.avi", "ffv1", "bgra"},
      {"raw_rgb24.mov", "rawvideo", "rgb24"},  {"raw_bgr24.avi", "rawvideo", ""},
      {"raw_gbrp.nut", "rawvideo", "gbrp"},    {"png_rgb24.mov", "png", "rgb24"},
      {"png_rgba.mkv", "png", "rgba"},         {"utvideo_gbrp.avi", "utvideo", "gbrp"},
      {"utvideo_gbrp.mkv", "utvideo", "gbrp"}, {"h264rgb_lossless.mkv", "h264rgb", "bgr0"},
  };
  int checked = 0;
  for (const Case& c : cases) {
    for (const auto& [width, height] : {std::pair<std::int64_t, std::int64_t>{64, 48}, {37, 23}}) {
      SCOPED_TRACE(std::string(c.name) + " " + std::to_string(width) + "x" + std::to_string(height));
      const path file = write(dir, std::to_string(width) + "_" + c.name, make_spec(c.codec, 6, width, height, c.pix_fmt));
      VideoReader reader(file);
      ASSERT_EQ(reader.info().total_frames, 6);
      const Frames frames = read(reader, all_indices(6));
      ASSERT_EQ(frames.images.size(), 6u);
      for (std::int64_t i = 0; i < 6; ++i) {
        EXPECT_EQ(frames.images[i].pixels, test_pattern(width, height, i).pixels) << "frame " << i;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 20);
}

// Lossy codecs at high quality: the mean error stays within a few levels of the pattern, with the
// BT.601 or BT.709 matrix and the limited or full range the clip is tagged with. A conversion that
// ignored the tags would miss by far more on these saturated gradients.
TEST(VideoDecode, LossyClipsStayCloseToThePatternWithTheirColourTags) {
  test::TempDir dir;
  struct Case {
    const char* name;
    const char* codec;
    const char* pix_fmt;
    const char* colorspace;
    bool full_range;
  };
  const Case cases[] = {
      {"h264.mp4", "h264", "", "", false},
      {"h264_bt709.mp4", "h264", "", "bt709", false},
      {"h264_bt601.mkv", "h264", "", "bt601", false},
      {"h264_full.mkv", "h264", "", "", true},
      {"h264_bt709_full.mov", "h264", "", "bt709", true},
      {"h264_444_bt709.mp4", "h264", "yuv444p", "bt709", false},
      {"hevc_bt709.mp4", "hevc", "", "bt709", false},
      {"vp9_bt709.webm", "vp9", "", "bt709", false},
      {"vp9_full.webm", "vp9", "", "", true},
      {"vp8.webm", "vp8", "", "", false},
      {"av1_bt709.mkv", "av1", "", "bt709", false},
      {"mjpeg.avi", "mjpeg", "", "", false},
      {"mpeg4.avi", "mpeg4", "", "", false},
      {"ffv1_yuv420p_bt709.mkv", "ffv1", "yuv420p", "bt709", false},
  };
  int checked = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ClipSpec spec = make_spec(c.codec, 5, 160, 120, c.pix_fmt);
    spec.colorspace = c.colorspace;
    spec.full_range = c.full_range;
    VideoReader reader(write(dir, c.name, spec));
    const Frames frames = read(reader, all_indices(5));
    ASSERT_EQ(frames.images.size(), 5u);
    for (std::int64_t i = 0; i < 5; ++i) expect_frame_is(frames.images[i], i, 3.0, c.name);
    ++checked;
  }
  EXPECT_EQ(checked, 14);
}

// Interlaced frames are converted field by field (as FFmpeg 8's sws_scale_frame does for PyAV):
// each field's rows use that field's chroma rows, so the result still matches the pattern.
TEST(VideoDecode, InterlacedClipsDecodeCloseToThePattern) {
  test::TempDir dir;
  int checked = 0;
  for (const char* codec : {"h264", "mpeg4"}) {
    SCOPED_TRACE(codec);
    ClipSpec spec = make_spec(codec, 4, 160, 120);
    spec.interlaced = true;
    VideoReader reader(write(dir, std::string(codec) + "_interlaced.mkv", spec));
    const Frames frames = read(reader, all_indices(4));
    ASSERT_EQ(frames.images.size(), 4u);
    for (std::int64_t i = 0; i < 4; ++i) expect_frame_is(frames.images[i], i, 4.0, codec);
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

// Containers without a stored frame count: the packets are counted, and the count is exactly the
// number of frames the decoder outputs, also with B-frames (H.264) and hidden alt-ref frames
// (VP8 with auto-alt-ref, VP9 superframes).
TEST(VideoDecode, CountedFramesMatchWhatTheDecoderOutputs) {
  test::TempDir dir;
  struct Case {
    const char* name;
    const char* codec;
    std::int64_t frames;
    std::vector<std::pair<std::string, std::string>> options;
  };
  const std::vector<Case> cases = {
      {"h264_bframes.mkv", "h264", 37, {{"bf", "3"}}},
      {"vp8_altref.webm", "vp8", 41, {{"auto-alt-ref", "1"}, {"lag-in-frames", "16"}}},
      {"vp9_altref.webm", "vp9", 41, {{"auto-alt-ref", "1"}, {"lag-in-frames", "16"}}},
      {"av1.webm", "av1", 9, {}},
      {"ffv1.nut", "ffv1", 33, {}},
      {"raw.y4m", "rawvideo", 7, {}},
      {"h264.h264", "h264", 19, {}},  // a raw Annex B stream
  };
  int checked = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ClipSpec spec = make_spec(c.codec, c.frames);
    spec.high_quality = false;
    spec.encoder_options = c.options;
    VideoReader reader(write(dir, c.name, spec));
    EXPECT_TRUE(reader.info().frames_counted);
    EXPECT_EQ(reader.info().total_frames, c.frames);
    const Frames frames = read(reader, all_indices(c.frames));
    EXPECT_EQ(frames.indices, all_indices(c.frames));
    ++checked;
  }
  EXPECT_EQ(checked, 7);
}

// What Qwen3-VL's processor asks for: a few spread-out indices of a longer clip, each the exact
// frame (lossless clip), in order; a second call decodes from the start again.
TEST(VideoDecode, SparseIndicesGiveExactlyThoseFramesAndASecondCallStartsOver) {
  test::TempDir dir;
  VideoReader reader(write(dir, "long.mkv", make_spec("ffv1", 90, 48, 32, "bgr0")));
  const std::vector<std::int64_t> indices = {0, 13, 25, 38, 51, 64, 76, 89};
  for (int pass = 0; pass < 2; ++pass) {
    const Frames frames = read(reader, indices);
    ASSERT_EQ(frames.indices, indices);
    for (std::size_t i = 0; i < indices.size(); ++i) {
      EXPECT_EQ(frames.images[i].pixels, test_pattern(48, 32, indices[i]).pixels) << "frame " << indices[i];
    }
  }
  std::vector<std::int64_t> none;
  EXPECT_EQ(read(reader, none).images.size(), 0u);
}

TEST(VideoDecode, MemoryReaderMatchesTheFileReaderAndUsesItsLabel) {
  test::TempDir dir;
  const path file = write(dir, "clip.mp4", make_spec("h264", 10));
  const std::vector<std::uint8_t> bytes = read_bytes(file);
  VideoReader from_file(file);
  VideoReader from_memory(bytes, "uploaded video");
  EXPECT_EQ(from_memory.info().total_frames, from_file.info().total_frames);
  EXPECT_EQ(from_memory.info().container, from_file.info().container);
  const Frames a = read(from_file, {2, 9});
  const Frames b = read(from_memory, {2, 9});
  ASSERT_EQ(b.images.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) EXPECT_EQ(a.images[i].pixels, b.images[i].pixels);
  EXPECT_EQ(b.images[1].source, "uploaded video frame 9");
  const std::string message = error_of([&] { read(from_memory, {10}); });
  EXPECT_NE(message.find("uploaded video: frame index 10 is past the end: the video has 10 frames"), std::string::npos)
      << message;
}

TEST(VideoDecode, FrameRatesAndRotationAreReported) {
  test::TempDir dir;
  int checked = 0;
  for (const char* container : {"mp4", "mkv", "avi"}) {
    SCOPED_TRACE(container);
    ClipSpec spec = make_spec("h264", 6);
    spec.fps = "30000/1001";
    VideoReader reader(write(dir, std::string("ntsc.") + container, spec));
    EXPECT_NEAR(reader.info().fps, 30000.0 / 1001.0, 1e-3);
    ++checked;
  }
  // A half turn reads back as -180, as av_display_rotation_get (and so PyAV) gives it.
  for (const auto& [degrees, reported] : {std::pair{90.0, 90.0}, {-90.0, -90.0}, {180.0, -180.0}}) {
    for (const char* container : {"mp4", "mov"}) {
      ClipSpec spec = make_spec("h264", 3);
      spec.rotation_degrees = degrees;
      VideoReader reader(write(dir, "rotated" + std::to_string(checked) + "." + container, spec));
      EXPECT_EQ(reader.info().rotation_degrees, reported) << container << " " << degrees;
      EXPECT_EQ(reader.info().width, 64) << "rotation is reported, not applied";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 9);
}

// The first video stream is the one decoded, wherever it is; audio packets are skipped and not
// counted.
TEST(VideoDecode, AudioBeforeTheVideoStreamIsSkipped) {
  test::TempDir dir;
  int checked = 0;
  for (const char* name : {"av.mp4", "av.mkv", "av.avi"}) {
    SCOPED_TRACE(name);
    ClipSpec spec = make_spec("mjpeg", 15);
    spec.with_audio = true;
    VideoReader reader(write(dir, name, spec));
    EXPECT_EQ(reader.info().total_frames, 15);
    const Frames frames = read(reader, {0, 7, 14});
    ASSERT_EQ(frames.indices, (std::vector<std::int64_t>{0, 7, 14}));
    for (std::size_t i = 0; i < 3; ++i) expect_frame_is(frames.images[i], frames.indices[i], 6.0, name);
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

// ---- Bad input: every error names the file and the problem; nothing crashes. ----

TEST(VideoDecodeErrors, MissingEmptyAndNonRegularFiles) {
  test::TempDir dir;
  const path missing = dir / "missing.mp4";
  EXPECT_EQ(error_of([&] { VideoReader reader(missing); }), missing.string() + ": no such file");
  const path empty = dir / "empty.mp4";
  write_bytes(empty, {});
  EXPECT_EQ(error_of([&] { VideoReader reader(empty); }), empty.string() + ": the video file is empty");
  EXPECT_EQ(error_of([&] { VideoReader reader(dir.path()); }), dir.path().string() + ": not a regular file");
  const std::vector<std::uint8_t> nothing;
  EXPECT_EQ(error_of([&] { VideoReader reader(nothing, "upload"); }), "upload: the video file is empty");
}

TEST(VideoDecodeErrors, FilesThatAreNotVideos) {
  test::TempDir dir;
  std::mt19937 random(1234);
  std::vector<std::uint8_t> noise(4096);
  for (std::uint8_t& byte : noise) byte = static_cast<std::uint8_t>(random());
  const path noise_file = dir / "noise.mp4";
  write_bytes(noise_file, noise);
  std::string text;
  for (int line = 0; line < 40; ++line) text += "Line " + std::to_string(line) + " of a note, not a video.\n";
  const std::string short_text = "A short note.\n";
  const path text_file = dir / "notes.txt";
  const path short_text_file = dir / "short.txt";
  const path text_as_mp4 = dir / "notes.mp4";
  write_bytes(text_file, {text.begin(), text.end()});
  write_bytes(short_text_file, {short_text.begin(), short_text.end()});
  write_bytes(text_as_mp4, {text.begin(), text.end()});
  std::string message = error_of([&] { VideoReader reader(noise_file); });
  EXPECT_EQ(message.rfind(noise_file.string() + ": ", 0), 0u) << message;
  EXPECT_TRUE(message.find("not a video file libavformat recognises") != std::string::npos ||
              message.find("cannot read its header") != std::string::npos)
      << message;
  // A .txt file long enough for libavformat's ANSI-art (tty) demuxer to claim it, and a short one
  // nothing claims.
  EXPECT_EQ(error_of([&] { VideoReader reader(text_file); }), text_file.string() + ": a text file, not a video");
  EXPECT_EQ(error_of([&] { VideoReader reader(short_text_file); }),
            short_text_file.string() + ": not a video file libavformat recognises (Invalid data found when processing input)");
  message = error_of([&] { VideoReader reader(text_as_mp4); });
  EXPECT_NE(message.find(text_as_mp4.string() + ": libavformat took it for a QuickTime / MOV"), std::string::npos)
      << message;
  EXPECT_NE(message.find("cannot read its header (Invalid data found when processing input)"), std::string::npos)
      << message;
}

TEST(VideoDecodeErrors, AudioOnlyFilesHaveNoVideoStream) {
  test::TempDir dir;
  int checked = 0;
  for (const char* name : {"tone.wav", "tone.mka", "tone.m4a"}) {
    ClipSpec spec;
    spec.audio_only = true;
    const path file = write(dir, name, spec);
    const std::string message = error_of([&] { VideoReader reader(file); });
    EXPECT_EQ(message.rfind(file.string() + ": no video stream in this ", 0), 0u) << message;
    EXPECT_NE(message.find("(it has 1 audio stream)"), std::string::npos) << message;
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

// Cut at half: the container decides whether that is detectable up front (MP4/MOV keep their
// index at the end, AVI announces 30 frames), shows as fewer frames (counted containers), or is
// found while decoding. Each outcome is deterministic; none crashes.
TEST(VideoDecodeErrors, TruncatedClips) {
  test::TempDir dir;
  int checked = 0;
  for (const char* name : {"cut.mp4", "cut.mov", "cut.avi", "cut.mkv", "cut.webm", "cut.y4m"}) {
    SCOPED_TRACE(name);
    const std::string container = path(name).extension().string();
    const char* codec = container == ".avi" ? "mjpeg" : container == ".webm" ? "vp9" : container == ".y4m" ? "rawvideo" : "h264";
    const path file = write(dir, name, make_spec(codec, 30));
    std::vector<std::uint8_t> bytes = read_bytes(file);
    bytes.resize(bytes.size() / 2);
    write_bytes(file, bytes);
    std::int64_t frames_read = 0;
    const std::string message = error_of([&] {
      VideoReader reader(file);
      EXPECT_LT(reader.info().total_frames, 31);
      std::int64_t expected = 0;
      reader.read_frames(all_indices(reader.info().total_frames), [&](std::int64_t index, RgbImage) {
        EXPECT_EQ(index, expected++);
        ++frames_read;
      });
    });
    if (container == ".mp4" || container == ".mov") {
      EXPECT_EQ(message.rfind(file.string() + ": libavformat took it for a QuickTime / MOV", 0), 0u) << message;
      EXPECT_NE(message.find("cannot read its header"), std::string::npos) << message;
    } else if (container == ".avi") {
      EXPECT_EQ(message.rfind(file.string() + ": the stream ended after ", 0), 0u) << message;
      EXPECT_NE(message.find("was requested (the container announced 30)"), std::string::npos) << message;
    } else {
      EXPECT_EQ(message, "") << "a counted container shows the cut as fewer frames";
      EXPECT_GT(frames_read, 5);
      EXPECT_LT(frames_read, 30);
    }
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

// Random bytes over a tenth of the file, a third of the way in: either the damage is concealed
// and the frames decode, or the error names the file and where it happened. (Run under ASan by
// `make asan`.)
TEST(VideoDecodeErrors, CorruptBytesInTheMiddle) {
  test::TempDir dir;
  int checked = 0, errors = 0;
  for (const char* name : {"bad.mp4", "bad.mov", "bad.mkv", "bad.webm", "bad.avi", "bad.y4m", "bad_ffv1.mkv"}) {
    SCOPED_TRACE(name);
    const std::string extension = path(name).extension().string();
    const char* codec = std::string(name) == "bad_ffv1.mkv" ? "ffv1"
                        : extension == ".webm"               ? "vp9"
                        : extension == ".avi"                ? "mjpeg"
                        : extension == ".y4m"                ? "rawvideo"
                                                             : "h264";
    const path file = write(dir, name, make_spec(codec, 30));
    std::vector<std::uint8_t> bytes = read_bytes(file);
    std::mt19937 random(99);
    for (std::size_t i = bytes.size() / 3; i < bytes.size() / 3 + bytes.size() / 10; ++i) {
      bytes[i] = static_cast<std::uint8_t>(random());
    }
    write_bytes(file, bytes);
    const std::string message = error_of([&] {
      VideoReader reader(file);
      const Frames frames = read(reader, all_indices(reader.info().total_frames));
      EXPECT_EQ(static_cast<std::int64_t>(frames.images.size()), reader.info().total_frames);
    });
    if (!message.empty()) {
      ++errors;
      EXPECT_EQ(message.rfind(file.string() + ": ", 0), 0u) << message;
      EXPECT_TRUE(message.find("frame") != std::string::npos || message.find("packets") != std::string::npos) << message;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 7);
  EXPECT_GT(errors, 0) << "at least one container should report the damage";
}

void write_y4m(const path& file, const std::string& header, int frames, int width, int height) {
  std::string bytes = header + "\n";
  for (int i = 0; i < frames; ++i) {
    bytes += "FRAME\n";
    bytes += std::string(static_cast<std::size_t>(width * height * 3 / 2), static_cast<char>(16 + 40 * i));
  }
  write_bytes(file, {bytes.begin(), bytes.end()});
}

TEST(VideoDecodeErrors, HandWrittenY4mHeadersWithAbsurdValues) {
  test::TempDir dir;
  const path huge = dir / "huge.y4m";
  write_y4m(huge, "YUV4MPEG2 W100000 H100000 F30:1 Ip A1:1 C420jpeg", 1, 4, 4);
  std::string message = error_of([&] { VideoReader reader(huge); });
  EXPECT_EQ(message.rfind(huge.string() + ": libavformat took it for a YUV4MPEG pipe (yuv4mpegpipe) file", 0), 0u)
      << message;
  EXPECT_NE(message.find("cannot read its header"), std::string::npos) << message;

  // Within libavformat's limits but beyond ours: refused before a frame is decoded.
  const path big = dir / "big.y4m";
  write_y4m(big, "YUV4MPEG2 W10000 H10000 F30:1 Ip A1:1 C420jpeg", 1, 4, 4);
  EXPECT_EQ(error_of([&] { VideoReader reader(big); }),
            big.string() + ": the video (rawvideo) is 10000x10000 pixels, more than the limit of 67108864 pixels");

  // Frame rates are reported as stored, however absurd; libavformat reads 0 or negative ones as 25.
  struct Rate {
    const char* field;
    double fps;
  };
  int checked = 0;
  for (const Rate& rate : {Rate{"F2147483647:1", 2147483647.0}, Rate{"F1:2147483647", 1.0 / 2147483647.0},
                           Rate{"F0:0", 25.0}, Rate{"F-30:1", 25.0}, Rate{"F30:0", 25.0}}) {
    SCOPED_TRACE(rate.field);
    const path file = dir / ("rate" + std::to_string(checked) + ".y4m");
    write_y4m(file, std::string("YUV4MPEG2 W16 H16 ") + rate.field + " Ip A1:1 C420jpeg", 3, 16, 16);
    VideoReader reader(file);
    EXPECT_DOUBLE_EQ(reader.info().fps, rate.fps);
    EXPECT_EQ(reader.info().total_frames, 3);
    const Frames frames = read(reader, all_indices(3));
    ASSERT_EQ(frames.images.size(), 3u);
    EXPECT_EQ(frames.images[2].pixels[0], frames.images[2].pixels[3]);  // a flat grey frame
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

TEST(VideoDecodeErrors, BadIndices) {
  test::TempDir dir;
  const path file = write(dir, "clip.avi", make_spec("mjpeg", 12));
  VideoReader reader(file);
  const std::string prefix = file.string() + ": ";
  EXPECT_EQ(error_of([&] { read(reader, {3, 12}); }),
            prefix + "frame index 12 is past the end: the video has 12 frames (0 to 11)");
  EXPECT_EQ(error_of([&] { read(reader, {-1}); }), prefix + "frame index -1 is negative");
  EXPECT_EQ(error_of([&] { read(reader, {5, 5}); }),
            prefix + "the requested frame indices must be ascending without repeats, but 5 follows 5");
  EXPECT_EQ(error_of([&] { read(reader, {7, 2}); }),
            prefix + "the requested frame indices must be ascending without repeats, but 2 follows 7");
  EXPECT_EQ(read(reader, {11}).indices, (std::vector<std::int64_t>{11}));  // still usable
}

TEST(VideoDecodeErrors, LimitsAreEnforcedWithTheNumbers) {
  test::TempDir dir;
  const path mp4 = write(dir, "clip.mp4", make_spec("h264", 12));
  const path mkv = write(dir, "clip.mkv", make_spec("h264", 12));
  VideoLimits pixels;
  pixels.max_frame_pixels = 64 * 48 - 1;
  EXPECT_EQ(error_of([&] { VideoReader reader(mp4, pixels); }),
            mp4.string() + ": the video (h264) is 64x48 pixels, more than the limit of 3071 pixels");
  VideoLimits frames;
  frames.max_total_frames = 11;
  EXPECT_EQ(error_of([&] { VideoReader reader(mp4, frames); }),
            mp4.string() + ": the video stream announces 12 frames, more than the limit of 11");
  EXPECT_EQ(error_of([&] { VideoReader reader(mkv, frames); }),
            mkv.string() + ": the video stream has more than 11 frames, the limit");
  VideoLimits bytes;
  bytes.max_file_bytes = 100;
  const std::string message = error_of([&] { VideoReader reader(mkv, bytes); });
  EXPECT_EQ(message.rfind(mkv.string() + ": the video file has ", 0), 0u) << message;
  EXPECT_NE(message.find(" bytes, more than the limit of 100"), std::string::npos) << message;
}

// A raw H.264 stream that switches from 64x48 to 128x96 halfway: the frames keep their own sizes,
// and the per-frame limit catches the larger ones although the header announced the small size.
TEST(VideoDecodeErrors, FrameSizeChangesMidStream) {
  test::TempDir dir;
  std::vector<std::uint8_t> stream = read_bytes(write(dir, "small.h264", make_spec("h264", 10, 64, 48)));
  const std::vector<std::uint8_t> large = read_bytes(write(dir, "large.h264", make_spec("h264", 10, 128, 96)));
  stream.insert(stream.end(), large.begin(), large.end());
  const path file = dir / "switch.h264";
  write_bytes(file, stream);
  VideoReader reader(file);
  EXPECT_EQ(reader.info().width, 64);
  EXPECT_EQ(reader.info().total_frames, 20);
  const Frames frames = read(reader, {0, 9, 10, 19});
  ASSERT_EQ(frames.images.size(), 4u);
  EXPECT_EQ(frames.images[1].width, 64);
  EXPECT_EQ(frames.images[2].width, 128);
  expect_frame_is(frames.images[3], 9, 6.0, "second half");

  // The decoder itself refuses to allocate the larger frames (its max_pixels is the limit), so the
  // error comes from it; with frame threads, some frames after the switch (how many depends on
  // the number of cores).
  VideoLimits limits;
  limits.max_frame_pixels = 64 * 48;
  VideoReader limited(file, limits);
  const std::string message = error_of([&] { read(limited, {19}); });
  EXPECT_EQ(message.rfind(file.string() + ": the h264 decoder failed after ", 0), 0u) << message;
}

// A codec libavcodec cannot decode: an FFV1 clip whose fourcc was rewritten to an unknown one.
TEST(VideoDecodeErrors, UnknownCodecIsUnsupportedAndNamed) {
  test::TempDir dir;
  int checked = 0;
  for (const char* name : {"unknown.avi", "unknown.mkv"}) {
    const path file = write(dir, name, make_spec("ffv1", 3));
    std::vector<std::uint8_t> bytes = read_bytes(file);
    for (std::size_t i = 0; i + 4 <= bytes.size(); ++i) {
      if (std::string(bytes.begin() + static_cast<std::ptrdiff_t>(i), bytes.begin() + static_cast<std::ptrdiff_t>(i) + 4) == "FFV1") {
        bytes[i] = 'Z', bytes[i + 1] = 'Q', bytes[i + 2] = 'Z', bytes[i + 3] = 'Q';
      }
    }
    write_bytes(file, bytes);
    try {
      VideoReader reader(file);
      ADD_FAILURE() << name << " opened";
    } catch (const Unsupported& error) {
      EXPECT_EQ(std::string(error.what()),
                file.string() + ": this FFmpeg build has no decoder for the video codec none (fourcc ZQZQ)");
    }
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

}  // namespace
}  // namespace q3vl
