#pragma once
// One pass of libavformat over a video's bytes: probe the container, read the stream headers
// (avformat_find_stream_info, as PyAV's av.open does) and pick the first video stream (PyAV's
// container.streams.video[0]). Internal to media/video_decode.cpp.
#include <cstdint>
#include <string>

#include "media/libav_handles.h"
#include "media/video_io.h"

namespace q3vl {

struct VideoDemuxer {
  libav::IoContext io;         // declared first so it outlives `format`, which reads through it
  libav::FormatInput format;
  int stream_index = -1;

  AVStream* stream() const { return format->streams[stream_index]; }
};

// Throws InvalidInput naming `label` when libavformat does not recognise the bytes, cannot read
// the stream headers or finds no video stream. Decoders that find_stream_info opens refuse frames
// above `max_frame_pixels`, so a hostile header cannot make it allocate a giant frame.
VideoDemuxer open_video_demuxer(VideoBytes& bytes, const std::string& label, std::int64_t max_frame_pixels);

// Reads every packet to the end and returns how many carry data of the video stream (a frame
// each in Matroska, WebM and raw streams). Throws InvalidInput naming `label` at a read error or
// when the count passes `max_frames`. Leaves the demuxer at the end: open a new one to decode.
std::int64_t count_video_packets(VideoDemuxer& demuxer, const std::string& label, std::int64_t max_frames);

}  // namespace q3vl
