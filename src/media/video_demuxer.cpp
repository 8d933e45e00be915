#include "media/video_demuxer.h"

#include <cerrno>
#include <map>
#include <new>
#include <string_view>
#include <vector>

#include "q3vl/error.h"

namespace q3vl {
namespace {

// Playlists and scripts (HLS, DASH, concat, external references in MOV) ask libavformat to open
// further files or URLs by name; a video reader opens only the bytes it was given.
int refuse_nested_open(AVFormatContext*, AVIOContext**, const char*, int, AVDictionary**) { return AVERROR(EPERM); }

// The per-stream options avformat_find_stream_info takes, freed on every path.
class StreamOptions {
 public:
  StreamOptions(unsigned streams, std::int64_t max_frame_pixels) : options_(streams, nullptr) {
    for (AVDictionary*& options : options_) {
      if (av_dict_set_int(&options, "max_pixels", max_frame_pixels, 0) < 0) throw std::bad_alloc();
    }
  }
  ~StreamOptions() {
    for (AVDictionary*& options : options_) av_dict_free(&options);
  }
  StreamOptions(const StreamOptions&) = delete;
  StreamOptions& operator=(const StreamOptions&) = delete;
  AVDictionary** data() { return options_.data(); }

 private:
  std::vector<AVDictionary*> options_;
};

// "2 audio streams and 1 subtitle stream": what the file has instead of video.
std::string describe_streams(const AVFormatContext& format) {
  if (format.nb_streams == 0) return "no streams at all";
  std::map<std::string, int> counts;
  for (unsigned i = 0; i < format.nb_streams; ++i) {
    const char* type = av_get_media_type_string(format.streams[i]->codecpar->codec_type);
    ++counts[type != nullptr ? type : "unknown"];
  }
  std::string text;
  for (const auto& [type, count] : counts) {
    if (!text.empty()) text += " and ";
    text += std::to_string(count) + " " + type + (count == 1 ? " stream" : " streams");
  }
  return text;
}

}  // namespace

VideoDemuxer open_video_demuxer(VideoBytes& bytes, const std::string& label, std::int64_t max_frame_pixels) {
  VideoDemuxer demuxer;
  demuxer.io = bytes.make_io_context();
  // Probing first (what avformat_open_input would do) lets the messages say what the file looked
  // like. The name is only a hint for it (the extension, as when PyAV opens a path), never opened.
  const AVInputFormat* format = nullptr;
  const int probed = av_probe_input_buffer2(demuxer.io.get(), &format, label.c_str(), nullptr, 0, 0);
  if (probed < 0 || format == nullptr) {
    throw InvalidInput(label + ": not a video file libavformat recognises (" + libav::error_text(probed) + ")");
  }
  // libavformat renders any text file as ANSI-art video; a text file is not a video here.
  if (std::string_view(format->name) == "tty") throw InvalidInput(label + ": a text file, not a video");
  AVFormatContext* raw = avformat_alloc_context();
  if (raw == nullptr) throw std::bad_alloc();
  raw->pb = demuxer.io.get();
  raw->flags |= AVFMT_FLAG_CUSTOM_IO;  // so closing the demuxer leaves our AVIOContext to its owner
  raw->io_open = refuse_nested_open;
  const int opened = avformat_open_input(&raw, label.c_str(), format, nullptr);  // frees `raw` on failure
  if (opened < 0) {
    const std::string kind = format->long_name != nullptr ? format->long_name : format->name;
    throw InvalidInput(label + ": libavformat took it for a " + kind + " (" + format->name +
                       ") file but cannot read its header (" + libav::error_text(opened) + ")");
  }
  demuxer.format.reset(raw);
  StreamOptions options(demuxer.format->nb_streams, max_frame_pixels);
  const int found = avformat_find_stream_info(demuxer.format.get(), options.data());
  if (found < 0) {
    throw InvalidInput(label + ": libavformat cannot read the streams of this " + demuxer.format->iformat->name +
                       " file (" + libav::error_text(found) + ")");
  }
  for (unsigned i = 0; i < demuxer.format->nb_streams; ++i) {
    if (demuxer.format->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) {
      demuxer.stream_index = static_cast<int>(i);
      return demuxer;
    }
  }
  throw InvalidInput(label + ": no video stream in this " + demuxer.format->iformat->name + " file (it has " +
                     describe_streams(*demuxer.format) + ")");
}

std::int64_t count_video_packets(VideoDemuxer& demuxer, const std::string& label, std::int64_t max_frames) {
  libav::Packet packet = libav::make_packet();
  std::int64_t count = 0;
  for (;;) {
    const int read = av_read_frame(demuxer.format.get(), packet.get());
    if (read == AVERROR_EOF) return count;
    if (read < 0) {
      throw InvalidInput(label + ": cannot read the file after " + std::to_string(count) +
                         " packets of the video stream while counting its frames (" + libav::error_text(read) + ")");
    }
    // Empty packets carry no picture, and discarded ones are decoded but never output.
    if (packet->stream_index == demuxer.stream_index && packet->size > 0 && (packet->flags & AV_PKT_FLAG_DISCARD) == 0) {
      if (++count > max_frames) {
        throw InvalidInput(label + ": the video stream has more than " + std::to_string(max_frames) +
                           " frames, the limit");
      }
    }
    av_packet_unref(packet.get());
  }
}

}  // namespace q3vl
