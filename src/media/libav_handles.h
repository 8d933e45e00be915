#pragma once
// Owners for the libav objects the video reader creates: each is a unique_ptr whose deleter is the
// libav function that frees that kind of object, so an exception on any path frees everything.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include <memory>
#include <string>

namespace q3vl::libav {

struct FormatInputDeleter {
  void operator()(AVFormatContext* context) const { avformat_close_input(&context); }
};
struct CodecContextDeleter {
  void operator()(AVCodecContext* context) const { avcodec_free_context(&context); }
};
struct FrameDeleter {
  void operator()(AVFrame* frame) const { av_frame_free(&frame); }
};
struct PacketDeleter {
  void operator()(AVPacket* packet) const { av_packet_free(&packet); }
};
struct ScalerDeleter {
  void operator()(SwsContext* context) const { sws_freeContext(context); }
};
struct DictionaryDeleter {
  void operator()(AVDictionary* dictionary) const { av_dict_free(&dictionary); }
};
// avio may replace the buffer it was given, so the context's current buffer is the one to free.
struct IoContextDeleter {
  void operator()(AVIOContext* context) const {
    if (context != nullptr) av_freep(&context->buffer);
    avio_context_free(&context);
  }
};

using FormatInput = std::unique_ptr<AVFormatContext, FormatInputDeleter>;  // an opened demuxer
using CodecContext = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using Frame = std::unique_ptr<AVFrame, FrameDeleter>;
using Packet = std::unique_ptr<AVPacket, PacketDeleter>;
using Scaler = std::unique_ptr<SwsContext, ScalerDeleter>;
using Dictionary = std::unique_ptr<AVDictionary, DictionaryDeleter>;
using IoContext = std::unique_ptr<AVIOContext, IoContextDeleter>;

// av_strerror's text for a libav error code, e.g. "Invalid data found when processing input".
std::string error_text(int code);

Frame make_frame();    // throws std::bad_alloc when libav cannot allocate
Packet make_packet();

}  // namespace q3vl::libav
