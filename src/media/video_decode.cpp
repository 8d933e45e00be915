#include "media/video_decode.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <thread>
#include <utility>

extern "C" {
#include <libavutil/display.h>
}

#include "media/libav_handles.h"
#include "media/video_demuxer.h"
#include "media/video_io.h"
#include "media/video_rgb.h"
#include "q3vl/error.h"

namespace q3vl {
namespace {

// libav prints its own diagnostics to stderr; ours reach the caller as exception messages instead.
// Only codec contexts can be silenced one by one (log_level_offset, set in read_frames): demuxers
// and libswscale log through the process-wide level alone. So the level is lowered once per
// process, and only while it is still libav's default: a program that set its own keeps it.
void quiet_libav_logging() {
  static std::once_flag once;  // process-wide like the level it guards
  std::call_once(once, [] {
    if (av_log_get_level() == AV_LOG_INFO) av_log_set_level(AV_LOG_QUIET);
  });
}

// Added to the level of everything a decoder logs, which puts it below any level a program sets.
constexpr int kDecoderLogOffset = 1000;

// Frame threads beyond this many only add memory: libavcodec's own automatic choice stops at 16.
constexpr unsigned kMaxDecoderThreads = 16;

void check_frame_size(std::int64_t width, std::int64_t height, const VideoLimits& limits, const std::string& what) {
  if (width <= 0 || height <= 0) {
    throw InvalidInput(what + " is " + std::to_string(width) + "x" + std::to_string(height) +
                       " pixels; both sides must be positive");
  }
  if (width > limits.max_frame_pixels / height) {
    throw InvalidInput(what + " is " + std::to_string(width) + "x" + std::to_string(height) +
                       " pixels, more than the limit of " + std::to_string(limits.max_frame_pixels) + " pixels");
  }
}

double rate_value(AVRational rate) { return rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0.0; }

// Counterclockwise degrees in [-180, 180] (av_display_rotation_get, as PyAV's VideoFrame.rotation),
// rounded to whole degrees as libav advises: the matrix holds 16.16 fixed-point sines and cosines.
double display_rotation(const AVStream& stream) {
  std::size_t size = 0;
  const std::uint8_t* matrix = av_stream_get_side_data(&stream, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (matrix == nullptr || size < 9 * sizeof(std::int32_t)) return 0;
  const double degrees = std::round(av_display_rotation_get(reinterpret_cast<const std::int32_t*>(matrix)));
  return std::isnan(degrees) || degrees == 0 ? 0 : degrees;  // NaN: a degenerate matrix; no -0
}

}  // namespace

struct VideoReader::Impl {
  std::unique_ptr<VideoBytes> bytes;  // declared before `demuxer`, which reads from it
  std::string label;
  VideoLimits limits;
  VideoStreamInfo info;
  VideoDemuxer demuxer;
  bool demuxer_at_start = false;  // false once a pass has read packets from it
  const AVCodec* decoder = nullptr;

  void open();
  void reopen();
  void decode(std::span<const std::int64_t> indices,
              const std::function<void(std::int64_t, RgbImage)>& on_frame);
};

void VideoReader::Impl::open() {
  quiet_libav_logging();
  demuxer = open_video_demuxer(*bytes, label, limits.max_frame_pixels);
  const AVStream& stream = *demuxer.stream();
  const AVCodecParameters& parameters = *stream.codecpar;
  info.container = demuxer.format->iformat->name;
  info.codec = avcodec_get_name(parameters.codec_id);
  decoder = avcodec_find_decoder(parameters.codec_id);
  if (decoder == nullptr) {
    std::string tag;  // what the container called it, when libavcodec has no name for it
    if (parameters.codec_tag != 0) {
      char text[AV_FOURCC_MAX_STRING_SIZE] = {};
      tag = std::string(" (fourcc ") + av_fourcc_make_string(text, parameters.codec_tag) + ")";
    }
    throw Unsupported(label + ": this FFmpeg build has no decoder for the video codec " + info.codec + tag);
  }
  info.width = parameters.width;
  info.height = parameters.height;
  check_frame_size(info.width, info.height, limits, label + ": the video (" + info.codec + ")");
  info.fps = rate_value(stream.avg_frame_rate);
  if (info.fps == 0) info.fps = rate_value(stream.r_frame_rate);
  info.rotation_degrees = display_rotation(stream);
  if (stream.nb_frames > 0) {
    info.total_frames = stream.nb_frames;
    demuxer_at_start = true;
  } else {
    // Matroska, WebM and raw streams store no frame count: count the packets, then start over.
    info.frames_counted = true;
    info.total_frames = count_video_packets(demuxer, label, limits.max_total_frames);
    demuxer_at_start = false;
  }
  if (info.total_frames == 0) throw InvalidInput(label + ": the video stream has no frames");
  if (info.total_frames > limits.max_total_frames) {
    throw InvalidInput(label + ": the video stream announces " + std::to_string(info.total_frames) +
                       " frames, more than the limit of " + std::to_string(limits.max_total_frames));
  }
}

// A fresh demuxer at the start of the file, exactly as the first open left it before any packet.
void VideoReader::Impl::reopen() {
  VideoDemuxer fresh = open_video_demuxer(*bytes, label, limits.max_frame_pixels);
  if (fresh.stream_index != demuxer.stream_index) {
    throw InvalidInput(label + ": the file reads differently the second time (video stream " +
                       std::to_string(fresh.stream_index) + " instead of " + std::to_string(demuxer.stream_index) + ")");
  }
  demuxer.format.reset();  // the old demuxer reads through the old context: close it first
  demuxer = std::move(fresh);
  demuxer_at_start = true;
}

void VideoReader::Impl::decode(std::span<const std::int64_t> indices,
                               const std::function<void(std::int64_t, RgbImage)>& on_frame) {
  const AVStream& stream = *demuxer.stream();
  libav::CodecContext context(avcodec_alloc_context3(decoder));
  if (!context) throw std::bad_alloc();
  const int copied = avcodec_parameters_to_context(context.get(), stream.codecpar);
  if (copied < 0) {
    throw InvalidInput(label + ": bad " + info.codec + " stream parameters (" + libav::error_text(copied) + ")");
  }
  context->pkt_timebase = stream.time_base;
  // Frame and slice threads change neither which frames come out nor their order.
  context->thread_count = static_cast<int>(std::min(std::thread::hardware_concurrency(), kMaxDecoderThreads));
  context->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
  context->max_pixels = limits.max_frame_pixels;  // the decoder refuses larger frames before allocating them
  context->log_level_offset = kDecoderLogOffset;
  const int opened = avcodec_open2(context.get(), decoder, nullptr);
  if (opened < 0) {
    throw InvalidInput(label + ": the " + info.codec + " decoder cannot start on this stream (" +
                       libav::error_text(opened) + ")");
  }

  libav::Packet packet = libav::make_packet();
  libav::Frame frame = libav::make_frame();
  RgbConverter converter;
  std::int64_t next_index = 0;  // the index the decoder's next output frame gets
  std::size_t wanted = 0;       // position in `indices` of the next frame to hand over
  // With frame threads the decoder reports an error some frames after the packet that caused it:
  // the message says how many frames had come out.
  const auto decoder_error = [&](int code) {
    return InvalidInput(label + ": the " + info.codec + " decoder failed after " + std::to_string(next_index) +
                        " frames (" + libav::error_text(code) + ")");
  };
  // Takes every frame the decoder has ready; true once the last requested one was handed over.
  const auto drain = [&]() -> bool {
    for (;;) {
      const int received = avcodec_receive_frame(context.get(), frame.get());
      if (received == AVERROR(EAGAIN) || received == AVERROR_EOF) return false;
      if (received < 0) throw decoder_error(received);
      check_frame_size(frame->width, frame->height, limits,
                       label + ": frame " + std::to_string(next_index) + " (" + info.codec + ")");
      if (next_index == indices[wanted]) {
        on_frame(next_index, converter.convert(*frame, label + " frame " + std::to_string(next_index)));
        if (++wanted == indices.size()) return true;
      }
      ++next_index;
      av_frame_unref(frame.get());
    }
  };
  const auto send = [&](const AVPacket* data) -> bool {
    for (;;) {
      const int sent = avcodec_send_packet(context.get(), data);
      if (sent == AVERROR(EAGAIN)) {  // output waiting first: take it, then send again
        if (drain()) return true;
        continue;
      }
      if (sent < 0) throw decoder_error(sent);
      return drain();
    }
  };

  demuxer_at_start = false;
  for (;;) {
    const int read = av_read_frame(demuxer.format.get(), packet.get());
    if (read == AVERROR_EOF) break;
    if (read < 0) {
      throw InvalidInput(label + ": cannot read the file after frame " + std::to_string(next_index) + " (" +
                         libav::error_text(read) + ")");
    }
    // An empty packet would tell the decoder the stream has ended; it carries no picture anyway.
    const bool done = packet->stream_index == demuxer.stream_index && packet->size > 0 && send(packet.get());
    av_packet_unref(packet.get());
    if (done) return;
  }
  if (send(nullptr)) return;  // the frames the decoder still holds come out on the flush
  throw InvalidInput(label + ": the stream ended after " + std::to_string(next_index) + " frames, but frame " +
                     std::to_string(indices[wanted]) + " was requested (" +
                     (info.frames_counted ? "counting packets found " : "the container announced ") +
                     std::to_string(info.total_frames) + ")");
}

VideoReader::VideoReader(const std::filesystem::path& path, const VideoLimits& limits) : impl_(std::make_unique<Impl>()) {
  impl_->label = path.string();
  impl_->limits = limits;
  impl_->bytes = VideoBytes::open_file(path, limits.max_file_bytes);
  impl_->open();
}

VideoReader::VideoReader(std::span<const std::uint8_t> bytes, std::string label, const VideoLimits& limits)
    : impl_(std::make_unique<Impl>()) {
  impl_->label = std::move(label);
  impl_->limits = limits;
  impl_->bytes = VideoBytes::wrap_memory(bytes, impl_->label, limits.max_file_bytes);
  impl_->open();
}

VideoReader::~VideoReader() = default;
VideoReader::VideoReader(VideoReader&&) noexcept = default;
VideoReader& VideoReader::operator=(VideoReader&&) noexcept = default;

const VideoStreamInfo& VideoReader::info() const { return impl_->info; }

void VideoReader::read_frames(std::span<const std::int64_t> indices,
                              const std::function<void(std::int64_t index, RgbImage frame)>& on_frame) {
  const std::string& label = impl_->label;
  const std::int64_t total = impl_->info.total_frames;
  for (std::size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] < 0) throw InvalidInput(label + ": frame index " + std::to_string(indices[i]) + " is negative");
    if (indices[i] >= total) {
      throw InvalidInput(label + ": frame index " + std::to_string(indices[i]) + " is past the end: the video has " +
                         std::to_string(total) + " frames (0 to " + std::to_string(total - 1) + ")");
    }
    if (i > 0 && indices[i] <= indices[i - 1]) {
      throw InvalidInput(label + ": the requested frame indices must be ascending without repeats, but " +
                         std::to_string(indices[i]) + " follows " + std::to_string(indices[i - 1]));
    }
  }
  if (indices.empty()) return;
  if (!impl_->demuxer_at_start) impl_->reopen();
  impl_->decode(indices, on_frame);
}

}  // namespace q3vl
