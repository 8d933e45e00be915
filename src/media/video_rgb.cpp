#include "media/video_rgb.h"

#include <array>
#include <cstring>
#include <new>
#include <utility>

extern "C" {
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

#include "q3vl/error.h"

namespace q3vl {
namespace {

enum class Field { Whole, Top, Bottom };

bool is_jpeg_range_format(int format) {
  switch (format) {
    case AV_PIX_FMT_YUVJ420P: case AV_PIX_FMT_YUVJ422P: case AV_PIX_FMT_YUVJ444P:
    case AV_PIX_FMT_YUVJ440P: case AV_PIX_FMT_YUVJ411P:
      return true;
    default:
      return false;
  }
}

// YUV and grey sources go through a matrix and a range; RGB, palette, XYZ and Bayer ones do not.
bool has_yuv_matrix(int format, const AVPixFmtDescriptor& descriptor) {
  if (format == AV_PIX_FMT_XYZ12LE || format == AV_PIX_FMT_XYZ12BE) return false;
  return (descriptor.flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BAYER)) == 0;
}

std::string format_name(int format) {
  const char* name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(format));
  if (name != nullptr) return name;
  std::string number = "number ";  // appended, not "x" + string: gcc 12 warns (-Wrestrict) on that
  number += std::to_string(format);
  return number;
}

// Where the chroma samples sit, in libswscale's 1/256-pixel option units (-513: not subsampled):
// from the frame's chroma_location tag, centred when untagged, as FFmpeg 8's sws_scale_frame does;
// within one field of an interlaced frame the chroma rows lie half as far apart, the bottom
// field's one luma row lower. Only the scaling path reads this; swscale's unscaled YUV->RGB
// routines take chroma as it lies.
std::pair<int, int> chroma_position(const AVFrame& frame, const AVPixFmtDescriptor& descriptor, Field field) {
  const AVChromaLocation location =
      frame.chroma_location == AVCHROMA_LOC_UNSPECIFIED ? AVCHROMA_LOC_CENTER : frame.chroma_location;
  int x = 0, y = 0;
  if (avcodec_enum_to_chroma_pos(&x, &y, location) < 0) x = y = 128;  // FFmpeg 6+: av_chroma_location_enum_to_pos
  x *= (1 << descriptor.log2_chroma_w) - 1;
  y *= (1 << descriptor.log2_chroma_h) - 1;
  if (descriptor.log2_chroma_h && field != Field::Whole) {
    if (field == Field::Bottom) y += (256 << descriptor.log2_chroma_h) - 256;
    y >>= 1;
  }
  return {descriptor.log2_chroma_w ? x : -513, descriptor.log2_chroma_h ? y : -513};
}

// Rows of `frame` one field holds: the top field the even ones, the bottom field the odd ones.
int field_rows(int height, Field field) {
  return field == Field::Whole ? height : field == Field::Top ? (height + 1) / 2 : height / 2;
}

libav::Scaler make_scaler(const AVFrame& frame, Field field, bool full_range, const AVPixFmtDescriptor& descriptor,
                          const std::string& source) {
  libav::Scaler scaler(sws_alloc_context());
  if (!scaler) throw std::bad_alloc();
  SwsContext* context = scaler.get();
  const auto [h_position, v_position] = chroma_position(frame, descriptor, field);
  const int rows = field_rows(frame.height, field);
  const bool set = av_opt_set_int(context, "srcw", frame.width, 0) >= 0 &&
                   av_opt_set_int(context, "srch", rows, 0) >= 0 &&
                   av_opt_set_int(context, "src_format", frame.format, 0) >= 0 &&
                   av_opt_set_int(context, "dstw", frame.width, 0) >= 0 &&
                   av_opt_set_int(context, "dsth", rows, 0) >= 0 &&
                   av_opt_set_int(context, "dst_format", AV_PIX_FMT_RGB24, 0) >= 0 &&
                   av_opt_set_int(context, "sws_flags", SWS_BILINEAR, 0) >= 0 &&
                   av_opt_set_int(context, "src_h_chr_pos", h_position, 0) >= 0 &&
                   av_opt_set_int(context, "src_v_chr_pos", v_position, 0) >= 0;
  if (!set || sws_init_context(context, nullptr, nullptr) < 0) {
    throw Unsupported(source + ": libswscale cannot convert pixel format " + format_name(frame.format) + " to RGB");
  }
  if (has_yuv_matrix(frame.format, descriptor)) {
    int* source_table = nullptr;
    int* target_table = nullptr;
    int source_range = 0, target_range = 0, brightness = 0, contrast = 0, saturation = 0;
    sws_getColorspaceDetails(context, &source_table, &source_range, &target_table, &target_range, &brightness,
                             &contrast, &saturation);
    // sws_getCoefficients maps colorspace tags it has no matrix for (unspecified, reserved, YCgCo,
    // ICtCp, ...) to BT.601, as FFmpeg 8 does for the tags PyAV hands it.
    const int* matrix = sws_getCoefficients(frame.colorspace);
    if (sws_setColorspaceDetails(context, matrix, full_range ? 1 : 0, target_table, 1, brightness, contrast,
                                 saturation) < 0) {
      throw Unsupported(source + ": libswscale cannot set up the colour conversion of pixel format " +
                        format_name(frame.format));
    }
  }
  return scaler;
}

}  // namespace

RgbImage RgbConverter::convert(const AVFrame& frame, const std::string& source) {
  const AVPixFmtDescriptor* descriptor = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(frame.format));
  if (descriptor == nullptr || frame.width <= 0 || frame.height <= 0) {
    throw Unsupported(source + ": the decoder returned a " + std::to_string(frame.width) + "x" +
                      std::to_string(frame.height) + " frame in pixel format " + format_name(frame.format));
  }
  // FFmpeg 8 converts an interlaced frame one field at a time (each field's rows with its own
  // chroma rows), so a frame flagged interlaced is converted as two half-height pictures.
  const bool interlaced = frame.interlaced_frame != 0 && frame.height >= 2;
  const Setup setup{frame.width, frame.height, frame.format, static_cast<int>(frame.colorspace),
                    static_cast<int>(frame.chroma_location),
                    frame.color_range == AVCOL_RANGE_JPEG || is_jpeg_range_format(frame.format), interlaced};
  if (!scalers_[0] || !(setup == setup_)) {
    setup_ = Setup{};  // matches no frame until both scalers are built
    scalers_[0].reset();
    scalers_[1].reset();
    if (interlaced) {
      scalers_[0] = make_scaler(frame, Field::Top, setup.full_range, *descriptor, source);
      scalers_[1] = make_scaler(frame, Field::Bottom, setup.full_range, *descriptor, source);
    } else {
      scalers_[0] = make_scaler(frame, Field::Whole, setup.full_range, *descriptor, source);
    }
    setup_ = setup;
  }
  if (!rgb_ || rgb_->width != frame.width || rgb_->height != frame.height) {
    libav::Frame rgb = libav::make_frame();
    rgb->format = AV_PIX_FMT_RGB24;
    rgb->width = frame.width;
    rgb->height = frame.height;
    if (av_frame_get_buffer(rgb.get(), 0) < 0) throw std::bad_alloc();
    rgb_ = std::move(rgb);
  }
  const std::array<Field, 2> fields = interlaced ? std::array{Field::Top, Field::Bottom}
                                                 : std::array{Field::Whole, Field::Whole};
  for (std::size_t f = 0; f < (interlaced ? 2u : 1u); ++f) {
    const Field field = fields[f];
    // A field is every other row: start one row down for the bottom one and step two rows.
    const int skip = field == Field::Bottom ? 1 : 0, step = field == Field::Whole ? 1 : 2;
    const std::uint8_t* in[4] = {};
    int in_stride[4] = {};
    for (int plane = 0; plane < 4 && frame.data[plane] != nullptr; ++plane) {
      const bool palette = plane == 1 && (descriptor->flags & AV_PIX_FMT_FLAG_PAL) != 0;
      in[plane] = frame.data[plane] + (palette ? 0 : skip * frame.linesize[plane]);
      in_stride[plane] = frame.linesize[plane] * step;
    }
    std::uint8_t* out[4] = {rgb_->data[0] + skip * rgb_->linesize[0]};
    const int out_stride[4] = {rgb_->linesize[0] * step};
    const int rows = field_rows(frame.height, field);
    SwsContext* scaler = scalers_[field == Field::Bottom ? 1 : 0].get();
    const int done = sws_scale(scaler, in, in_stride, 0, rows, out, out_stride);
    if (done != rows) {
      throw Unsupported(source + ": libswscale failed to convert a frame in pixel format " + format_name(frame.format) +
                        " (" + libav::error_text(done) + ")");
    }
  }
  RgbImage image;
  image.width = frame.width;
  image.height = frame.height;
  image.source = source;
  const auto row_bytes = static_cast<std::size_t>(frame.width) * 3;
  image.pixels.resize(row_bytes * static_cast<std::size_t>(frame.height));
  for (int y = 0; y < frame.height; ++y) {
    std::memcpy(image.pixels.data() + row_bytes * static_cast<std::size_t>(y),
                rgb_->data[0] + static_cast<std::ptrdiff_t>(y) * rgb_->linesize[0], row_bytes);
  }
  return image;
}

}  // namespace q3vl
