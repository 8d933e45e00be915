#include "clip_writer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <optional>
#include <stdexcept>

extern "C" {
#include <libavutil/channel_layout.h>
#include <libavutil/display.h>
#include <libavutil/opt.h>
#include <libavutil/parseutils.h>
#include <libavutil/pixdesc.h>
}

#include "media/libav_handles.h"
#include "test_pattern.h"

namespace q3vl::clip {
namespace {

using std::filesystem::path;

// Added to the level of encoder messages: at libav's default level only their errors still show
// (x264 and others report statistics at "info").
constexpr int kQuietEncoder = AV_LOG_INFO - AV_LOG_ERROR;

struct OutputDeleter {
  void operator()(AVFormatContext* context) const {
    if (context->pb != nullptr && (context->oformat->flags & AVFMT_NOFILE) == 0) avio_closep(&context->pb);
    avformat_free_context(context);
  }
};
using Output = std::unique_ptr<AVFormatContext, OutputDeleter>;

[[noreturn]] void fail(const path& file, const std::string& problem) {
  throw std::runtime_error(file.string() + ": " + problem);
}

void check(int code, const path& file, const std::string& what) {
  if (code < 0) fail(file, what + " (" + libav::error_text(code) + ")");
}

std::string encoder_name(const std::string& codec, bool y4m) {
  if (codec == "h264") return "libx264";
  if (codec == "h264rgb") return "libx264rgb";
  if (codec == "hevc") return "libx265";
  if (codec == "vp8") return "libvpx";
  if (codec == "vp9") return "libvpx-vp9";
  if (codec == "av1") return "libaom-av1";
  if (codec == "rawvideo" && y4m) return "wrapped_avframe";  // what the y4m muxer takes
  return codec;
}

bool is_jpeg_range_format(AVPixelFormat format) {
  return format == AV_PIX_FMT_YUVJ420P || format == AV_PIX_FMT_YUVJ422P || format == AV_PIX_FMT_YUVJ444P ||
         format == AV_PIX_FMT_YUVJ440P || format == AV_PIX_FMT_YUVJ411P;
}

// The yuvj formats are their yuv twins in full range; libswscale warns about the old names.
AVPixelFormat without_jpeg_name(AVPixelFormat format) {
  switch (format) {
    case AV_PIX_FMT_YUVJ420P: return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P: return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P: return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P: return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P: return AV_PIX_FMT_YUV411P;
    default: return format;
  }
}

bool is_rgb_like(AVPixelFormat format) {
  const AVPixFmtDescriptor* descriptor = av_pix_fmt_desc_get(format);
  return descriptor != nullptr && (descriptor->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL)) != 0;
}

void set_option(AVCodecContext& encoder, const char* key, const char* value, const path& file) {
  // The encoder's private options first, then the generic ones ("bf", "g", ...).
  check(av_opt_set(&encoder, key, value, AV_OPT_SEARCH_CHILDREN), file,
        std::string("encoder ") + encoder.codec->name + " refuses option " + key + "=" + value);
}

// An output stream and its encoder.
struct Track {
  AVStream* stream = nullptr;
  libav::CodecContext encoder;
  std::int64_t next_pts = 0;  // in the encoder's time base
};

// Sends `frame` (nullptr: flush) to the encoder and writes every packet that comes out.
void encode(AVFormatContext& out, Track& track, const AVFrame* frame, const path& file) {
  check(avcodec_send_frame(track.encoder.get(), frame), file, "the encoder refused a frame");
  libav::Packet packet = libav::make_packet();
  for (;;) {
    const int received = avcodec_receive_packet(track.encoder.get(), packet.get());
    if (received == AVERROR(EAGAIN) || received == AVERROR_EOF) return;
    check(received, file, "encoding failed");
    av_packet_rescale_ts(packet.get(), track.encoder->time_base, track.stream->time_base);
    packet->stream_index = track.stream->index;
    check(av_interleaved_write_frame(&out, packet.get()), file, "the muxer refused a packet");
  }
}

void set_quality(AVCodecContext& encoder, const std::string& name, const ClipSpec& spec, const path& file) {
  if (name == "libx265") {
    // x265 prints to stderr by itself; one thread pool of the requested size keeps runs repeatable.
    const std::string params = "log-level=none:pools=" + std::to_string(spec.threads) + ":frame-threads=1";
    set_option(encoder, "x265-params", params.c_str(), file);
  }
  if (name == "libx264rgb" && spec.high_quality) set_option(encoder, "qp", "0", file);  // lossless
  if (!spec.high_quality) return;
  if (name == "libx264" || name == "libx265") set_option(encoder, "crf", "10", file);
  if (name == "libvpx") {
    encoder.bit_rate = 50'000'000;  // VP8's constant-quality mode needs a ceiling
    set_option(encoder, "crf", "4", file);
  }
  if (name == "libvpx-vp9") {
    encoder.bit_rate = 0;
    set_option(encoder, "crf", "8", file);
  }
  if (name == "libaom-av1") {
    encoder.bit_rate = 0;
    set_option(encoder, "crf", "12", file);
    set_option(encoder, "cpu-used", "8", file);
    set_option(encoder, "usage", "realtime", file);
  }
  if (name == "mjpeg" || name == "mpeg4") {
    encoder.flags |= AV_CODEC_FLAG_QSCALE;
    encoder.global_quality = FF_QP2LAMBDA * 2;
  }
}

void set_color_tags(AVCodecContext& encoder, const ClipSpec& spec, const path& file) {
  if (spec.colorspace == "bt709") {
    encoder.colorspace = AVCOL_SPC_BT709;
    encoder.color_primaries = AVCOL_PRI_BT709;
    encoder.color_trc = AVCOL_TRC_BT709;
  } else if (spec.colorspace == "bt601") {
    encoder.colorspace = AVCOL_SPC_SMPTE170M;
    encoder.color_primaries = AVCOL_PRI_SMPTE170M;
    encoder.color_trc = AVCOL_TRC_SMPTE170M;
  } else if (!spec.colorspace.empty()) {
    fail(file, "unknown colorspace " + spec.colorspace + " (bt709 or bt601)");
  }
  if (spec.full_range || is_jpeg_range_format(encoder.pix_fmt)) {
    encoder.color_range = AVCOL_RANGE_JPEG;
  } else if (!spec.colorspace.empty()) {
    encoder.color_range = AVCOL_RANGE_MPEG;
  }
}

Track add_video(AVFormatContext& out, const ClipSpec& spec, AVRational fps, const path& file) {
  const std::string name = encoder_name(spec.codec, std::string(out.oformat->name) == "yuv4mpegpipe");
  const AVCodec* codec = avcodec_find_encoder_by_name(name.c_str());
  if (codec == nullptr || codec->type != AVMEDIA_TYPE_VIDEO) fail(file, "this FFmpeg build has no video encoder " + name);
  // Raw video: AVI's uncompressed RGB is BGR by definition (rgb24 there would read back swapped).
  const bool avi = std::string(out.oformat->name) == "avi";
  AVPixelFormat format = codec->pix_fmts != nullptr ? codec->pix_fmts[0]
                         : name == "wrapped_avframe" ? AV_PIX_FMT_YUV420P
                         : avi                       ? AV_PIX_FMT_BGR24
                                                     : AV_PIX_FMT_RGB24;
  if (!spec.pix_fmt.empty()) {
    format = av_get_pix_fmt(spec.pix_fmt.c_str());
    if (format == AV_PIX_FMT_NONE) fail(file, "unknown pixel format " + spec.pix_fmt);
    bool taken = codec->pix_fmts == nullptr;
    for (const AVPixelFormat* f = codec->pix_fmts; f != nullptr && *f != AV_PIX_FMT_NONE; ++f) taken |= *f == format;
    if (!taken) fail(file, "encoder " + name + " does not take pixel format " + spec.pix_fmt);
  }
  Track track;
  track.stream = avformat_new_stream(&out, nullptr);
  track.encoder.reset(avcodec_alloc_context3(codec));
  if (track.stream == nullptr || !track.encoder) throw std::bad_alloc();
  AVCodecContext& encoder = *track.encoder;
  encoder.width = static_cast<int>(spec.width);
  encoder.height = static_cast<int>(spec.height);
  encoder.pix_fmt = format;
  encoder.time_base = av_inv_q(fps);
  encoder.framerate = fps;
  encoder.thread_count = spec.threads;
  encoder.flags |= AV_CODEC_FLAG_BITEXACT;  // no version strings: the same bytes from every build
  encoder.log_level_offset = kQuietEncoder;
  if (spec.gop > 0) encoder.gop_size = spec.gop;
  if (spec.interlaced) {
    encoder.flags |= AV_CODEC_FLAG_INTERLACED_DCT | AV_CODEC_FLAG_INTERLACED_ME;
    encoder.field_order = AV_FIELD_TT;
  }
  if (out.oformat->flags & AVFMT_GLOBALHEADER) encoder.flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  set_color_tags(encoder, spec, file);
  set_quality(encoder, name, spec, file);
  for (const auto& [key, value] : spec.encoder_options) set_option(encoder, key.c_str(), value.c_str(), file);
  check(avcodec_open2(&encoder, codec, nullptr), file, "cannot open encoder " + name);
  check(avcodec_parameters_from_context(track.stream->codecpar, &encoder), file, "cannot copy the encoder parameters");
  track.stream->time_base = encoder.time_base;
  track.stream->avg_frame_rate = fps;
  if (spec.rotation_degrees != 0) {
    auto* matrix = reinterpret_cast<std::int32_t*>(
        av_stream_new_side_data(track.stream, AV_PKT_DATA_DISPLAYMATRIX, 9 * sizeof(std::int32_t)));
    if (matrix == nullptr) throw std::bad_alloc();
    av_display_rotation_set(matrix, -spec.rotation_degrees);  // it takes clockwise degrees
  }
  return track;
}

Track add_audio(AVFormatContext& out, const path& file) {
  // AVI's default (MP3) has an encoder delay; the muxer would shift the video by it and announce
  // empty frames ahead of the first picture. PCM has none.
  const AVCodecID id = std::string(out.oformat->name) == "avi" ? AV_CODEC_ID_PCM_S16LE : out.oformat->audio_codec;
  const AVCodec* codec = id == AV_CODEC_ID_NONE ? nullptr : avcodec_find_encoder(id);
  if (codec == nullptr) fail(file, std::string("no audio encoder for the ") + out.oformat->name + " container");
  Track track;
  track.stream = avformat_new_stream(&out, nullptr);
  track.encoder.reset(avcodec_alloc_context3(codec));
  if (track.stream == nullptr || !track.encoder) throw std::bad_alloc();
  AVCodecContext& encoder = *track.encoder;
  encoder.sample_fmt = codec->sample_fmts != nullptr ? codec->sample_fmts[0] : AV_SAMPLE_FMT_S16;
  encoder.sample_rate = 16000;
  if (codec->supported_samplerates != nullptr) {
    bool supported = false;
    for (const int* rate = codec->supported_samplerates; *rate != 0; ++rate) supported |= *rate == 16000;
    if (!supported) encoder.sample_rate = codec->supported_samplerates[0];
  }
  av_channel_layout_default(&encoder.ch_layout, 1);
  encoder.time_base = AVRational{1, encoder.sample_rate};
  encoder.flags |= AV_CODEC_FLAG_BITEXACT;
  encoder.log_level_offset = kQuietEncoder;
  if (out.oformat->flags & AVFMT_GLOBALHEADER) encoder.flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  check(avcodec_open2(&encoder, codec, nullptr), file, std::string("cannot open audio encoder ") + codec->name);
  check(avcodec_parameters_from_context(track.stream->codecpar, &encoder), file, "cannot copy the encoder parameters");
  track.stream->time_base = encoder.time_base;
  return track;
}

// Writes 440 Hz tone frames until the audio reaches `seconds`.
void write_audio_until(AVFormatContext& out, Track& track, double seconds, const path& file) {
  AVCodecContext& encoder = *track.encoder;
  const int frame_samples = encoder.frame_size > 0 ? encoder.frame_size : 1024;
  while (static_cast<double>(track.next_pts) < seconds * encoder.sample_rate) {
    libav::Frame frame = libav::make_frame();
    frame->format = encoder.sample_fmt;
    frame->sample_rate = encoder.sample_rate;
    frame->nb_samples = frame_samples;
    check(av_channel_layout_copy(&frame->ch_layout, &encoder.ch_layout), file, "cannot set the channel layout");
    check(av_frame_get_buffer(frame.get(), 0), file, "cannot allocate audio samples");
    for (int i = 0; i < frame_samples; ++i) {
      const double t = static_cast<double>(track.next_pts + i) / encoder.sample_rate;
      const double value = 0.3 * std::sin(2 * std::numbers::pi * 440 * t);
      switch (encoder.sample_fmt) {
        case AV_SAMPLE_FMT_S16: case AV_SAMPLE_FMT_S16P:
          reinterpret_cast<std::int16_t*>(frame->data[0])[i] = static_cast<std::int16_t>(std::lround(value * 32767));
          break;
        case AV_SAMPLE_FMT_S32: case AV_SAMPLE_FMT_S32P:
          reinterpret_cast<std::int32_t*>(frame->data[0])[i] = static_cast<std::int32_t>(std::lround(value * 2147483647.0));
          break;
        case AV_SAMPLE_FMT_FLT: case AV_SAMPLE_FMT_FLTP:
          reinterpret_cast<float*>(frame->data[0])[i] = static_cast<float>(value);
          break;
        default:
          fail(file, std::string("audio sample format ") + av_get_sample_fmt_name(encoder.sample_fmt) + " is not handled");
      }
    }
    frame->pts = track.next_pts;
    track.next_pts += frame_samples;
    encode(out, track, frame.get(), file);
  }
}

// The pattern converted to the encoder's pixel format, with the matrix and range the clip is tagged with.
class FrameMaker {
 public:
  FrameMaker(const AVCodecContext& encoder, const ClipSpec& spec, const path& file) : encoder_(encoder), file_(file) {
    rgb_ = libav::make_frame();
    rgb_->format = AV_PIX_FMT_RGB24;
    rgb_->width = encoder.width;
    rgb_->height = encoder.height;
    check(av_frame_get_buffer(rgb_.get(), 0), file, "cannot allocate a frame");
    scaler_.reset(sws_getContext(encoder.width, encoder.height, AV_PIX_FMT_RGB24, encoder.width, encoder.height,
                                 without_jpeg_name(encoder.pix_fmt), SWS_BILINEAR | SWS_ACCURATE_RND, nullptr, nullptr,
                                 nullptr));
    if (!scaler_) fail(file, std::string("libswscale cannot convert RGB to ") + av_get_pix_fmt_name(encoder.pix_fmt));
    if (!is_rgb_like(encoder.pix_fmt)) {
      const int matrix = spec.colorspace == "bt709" ? SWS_CS_ITU709 : SWS_CS_ITU601;
      const bool full = spec.full_range || is_jpeg_range_format(encoder.pix_fmt);
      check(sws_setColorspaceDetails(scaler_.get(), sws_getCoefficients(SWS_CS_DEFAULT), 1, sws_getCoefficients(matrix),
                                     full ? 1 : 0, 0, 1 << 16, 1 << 16),
            file, "cannot set the colour conversion");
    }
  }

  libav::Frame make(std::int64_t index) {
    const RgbImage pattern = test_pattern(encoder_.width, encoder_.height, index);
    const auto row = static_cast<std::size_t>(encoder_.width) * 3;
    for (int y = 0; y < encoder_.height; ++y) {
      std::memcpy(rgb_->data[0] + static_cast<std::ptrdiff_t>(y) * rgb_->linesize[0], pattern.pixels.data() + row * y, row);
    }
    libav::Frame frame = libav::make_frame();
    frame->format = encoder_.pix_fmt;
    frame->width = encoder_.width;
    frame->height = encoder_.height;
    frame->colorspace = encoder_.colorspace;
    frame->color_range = encoder_.color_range;
    frame->color_primaries = encoder_.color_primaries;
    frame->color_trc = encoder_.color_trc;
    check(av_frame_get_buffer(frame.get(), 0), file_, "cannot allocate a frame");
    sws_scale(scaler_.get(), rgb_->data, rgb_->linesize, 0, encoder_.height, frame->data, frame->linesize);
    frame->pts = index;
    if (encoder_.flags & AV_CODEC_FLAG_INTERLACED_DCT) frame->interlaced_frame = frame->top_field_first = 1;
    if (encoder_.flags & AV_CODEC_FLAG_QSCALE) frame->quality = encoder_.global_quality;
    return frame;
  }

 private:
  const AVCodecContext& encoder_;
  path file_;
  libav::Frame rgb_;  // padded rows: libswscale may read a little past the width
  libav::Scaler scaler_;
};

}  // namespace

void write_clip(const path& file, const ClipSpec& spec) {
  if (!spec.audio_only && (spec.frames <= 0 || spec.width <= 0 || spec.height <= 0)) {
    fail(file, "a clip needs at least one frame and a positive size");
  }
  AVRational fps{};
  if (av_parse_video_rate(&fps, spec.fps.c_str()) < 0 || fps.num <= 0 || fps.den <= 0) {
    fail(file, "bad frame rate " + spec.fps);
  }
  AVFormatContext* raw = nullptr;
  if (avformat_alloc_output_context2(&raw, nullptr, nullptr, file.c_str()) < 0 || raw == nullptr) {
    fail(file, "no muxer for this file extension");
  }
  Output out(raw);
  out->flags |= AVFMT_FLAG_BITEXACT;
  std::optional<Track> audio, video;
  if (spec.audio_only || spec.with_audio) audio = add_audio(*out, file);
  if (!spec.audio_only) video = add_video(*out, spec, fps, file);

  // Written under a temporary name and renamed when complete: a failed run leaves no clip behind.
  struct PartialFile {
    path name;
    bool finished = false;
    ~PartialFile() {
      std::error_code ignored;
      if (!finished) std::filesystem::remove(name, ignored);
    }
  } partial_file{file.string() + ".partial"};
  const path& partial = partial_file.name;
  if ((out->oformat->flags & AVFMT_NOFILE) == 0) {
    check(avio_open(&out->pb, partial.c_str(), AVIO_FLAG_WRITE), file, "cannot create the file");
  }
  check(avformat_write_header(out.get(), nullptr), file, "the muxer refused the streams");
  if (video) {
    FrameMaker maker(*video->encoder, spec, file);
    for (std::int64_t i = 0; i < spec.frames; ++i) {
      if (audio) write_audio_until(*out, *audio, static_cast<double>(i + 1) / av_q2d(fps), file);
      encode(*out, *video, maker.make(i).get(), file);
    }
    encode(*out, *video, nullptr, file);
  } else {
    write_audio_until(*out, *audio, 0.5, file);
  }
  if (audio) encode(*out, *audio, nullptr, file);
  check(av_write_trailer(out.get()), file, "cannot finish the file");
  if (out->pb != nullptr) check(avio_closep(&out->pb), file, "cannot write the file");
  std::error_code error;
  std::filesystem::rename(partial, file, error);
  if (error) fail(file, "cannot rename the finished file (" + error.message() + ")");
  partial_file.finished = true;
}

}  // namespace q3vl::clip
