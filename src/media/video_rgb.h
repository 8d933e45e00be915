#pragma once
// Decoded video frames -> 8-bit RGB as PyAV 17's VideoFrame.to_ndarray(format="rgb24") computes
// them: libswscale with SWS_BILINEAR, the YUV->RGB matrix chosen by the frame's colorspace tag
// (BT.709, BT.2020, FCC, SMPTE 240M; BT.601 for untagged and everything else) and the source range
// by its color_range tag (full only when tagged JPEG, or for the yuvj formats), RGB out full range.
// PyAV hands the tags to sws_scale_frame (FFmpeg 8), which sets exactly these details; on FFmpeg
// 5.1 the same context is built with sws_getContext + sws_setColorspaceDetails. RGB-native formats
// (gbrp, bgr0, rgb24, ...) go through swscale's unscaled copies: a pure reshuffle, bit for bit.
// Like FFmpeg 8, chroma siting comes from the frame's chroma_location tag and interlaced frames are
// converted field by field.
#include <string>

#include "media/libav_handles.h"
#include "q3vl/image.h"

namespace q3vl {

class RgbConverter {
 public:
  // `frame` as RGB; `source` becomes the image's source. Throws Unsupported, naming `source`, for
  // a pixel format libswscale cannot convert.
  RgbImage convert(const AVFrame& frame, const std::string& source);

 private:
  struct Setup {
    int width = 0, height = 0, format = -1, colorspace = -1, chroma_location = -1;
    bool full_range = false, interlaced = false;
    bool operator==(const Setup&) const = default;
  };

  Setup setup_;
  libav::Scaler scalers_[2];  // built for setup_ (whole frame, or top and bottom field); rebuilt
                              // when a frame's size, format or tags change
  libav::Frame rgb_;      // padded rgb24 rows: swscale's SIMD may write a few pixels past the width
};

}  // namespace q3vl
