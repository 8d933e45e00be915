// JPEG through libjpeg-turbo, the library PIL decodes with, set up the way PIL sets it up (default
// ISLOW IDCT and fancy upsampling), so the pixels match PIL's bit for bit. stb_image's JPEG decoder
// differs from PIL by up to ~100 levels on 4:2:2 files, which is why it is not used here.
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <jpeglib.h>
// jpeglib.h must come first.
#include <jerror.h>

#include "q3vl/error.h"
#include "media/image_codecs.h"

namespace q3vl::image_codecs {
namespace {

// Progressive files may legally hold any number of scans; each costs a pass over the image, so a
// crafted file with millions of scans would run for hours. Real encoders write at most a few dozen.
constexpr int kMaxScans = 1000;

// libjpeg reports errors through a callback that must not return; it longjmps back to the
// setjmp in the stage function that called libjpeg.
struct JpegErrors {
  jpeg_error_mgr manager;  // first member: libjpeg hands back a pointer to it
  jpeg_progress_mgr progress;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool premature_end;
};

JpegErrors* errors_of(j_common_ptr info) { return reinterpret_cast<JpegErrors*>(info->err); }

void on_error(j_common_ptr info) {
  (*info->err->format_message)(info, errors_of(info)->message);
  std::longjmp(errors_of(info)->jump, 1);
}

// PIL ignores libjpeg's warnings about corrupt data, except that running out of data is an error
// there ("image file is truncated"), also when only the final EOI marker is missing.
void on_message(j_common_ptr info, int level) {
  if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) errors_of(info)->premature_end = true;
}

void on_progress(j_common_ptr info) {
  const auto* decompress = reinterpret_cast<j_decompress_ptr>(info);
  if (decompress->input_scan_number > kMaxScans) {
    std::snprintf(errors_of(info)->message, JMSG_LENGTH_MAX, "more than %d scans", kMaxScans);
    std::longjmp(errors_of(info)->jump, 1);
  }
}

// The stage functions hold no C++ objects with destructors, so a longjmp out of libjpeg into
// them skips nothing. They return false when libjpeg reported an error.
bool read_header(jpeg_decompress_struct* info, JpegErrors* errors, const std::uint8_t* data, unsigned long size) {
  if (setjmp(errors->jump)) return false;
  jpeg_create_decompress(info);
  info->progress = &errors->progress;
  jpeg_mem_src(info, data, size);
  jpeg_save_markers(info, JPEG_APP0 + 1, 0xFFFF);  // EXIF and XMP live in APP1
  jpeg_read_header(info, TRUE);
  return true;
}

bool start(jpeg_decompress_struct* info, JpegErrors* errors, J_COLOR_SPACE out_color_space) {
  if (setjmp(errors->jump)) return false;
  info->out_color_space = out_color_space;
  jpeg_start_decompress(info);
  return true;
}

bool read_rows(jpeg_decompress_struct* info, JpegErrors* errors, std::uint8_t* out, std::size_t row_bytes) {
  if (setjmp(errors->jump)) return false;
  while (info->output_scanline < info->output_height) {
    JSAMPROW row = out + static_cast<std::size_t>(info->output_scanline) * row_bytes;
    jpeg_read_scanlines(info, &row, 1);
  }
  jpeg_finish_decompress(info);  // reads up to EOI, so a missing tail is noticed
  return true;
}

class JpegDecoder {
 public:
  JpegDecoder() {
    info_.err = jpeg_std_error(&errors_.manager);
    errors_.manager.error_exit = on_error;
    errors_.manager.emit_message = on_message;
    errors_.progress.progress_monitor = on_progress;
  }
  ~JpegDecoder() { jpeg_destroy_decompress(&info_); }
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  jpeg_decompress_struct* info() { return &info_; }
  JpegErrors* errors() { return &errors_; }

  // Turns libjpeg's last error into an exception naming the file.
  [[noreturn]] void fail(const std::string& label) const {
    const int code = errors_.manager.msg_code;
    const std::string detail = errors_.message;
    if (code == JERR_BAD_PRECISION || code == JERR_SOF_UNSUPPORTED || code == JERR_NOT_COMPILED) {
      throw Unsupported(label + ": unsupported kind of JPEG (" + detail + ")");
    }
    if (errors_.premature_end) throw InvalidInput(label + ": the JPEG file is truncated (" + detail + ")");
    throw InvalidInput(label + ": corrupt JPEG file (" + detail + ")");
  }

 private:
  jpeg_decompress_struct info_{};
  JpegErrors errors_{};
};

bool starts_with(const jpeg_saved_marker_ptr marker, std::string_view prefix) {
  return marker->data_length >= prefix.size() && std::memcmp(marker->data, prefix.data(), prefix.size()) == 0;
}

// PIL's JPEG plugin: the first APP1 "Exif\0\0" segment is the EXIF block and later ones are
// appended to it without their prefix; the last XMP segment is kept, without its namespace header.
void read_metadata(jpeg_decompress_struct* info, DecodedImage& out) {
  using namespace std::string_view_literals;
  for (jpeg_saved_marker_ptr marker = info->marker_list; marker; marker = marker->next) {
    if (marker->marker != JPEG_APP0 + 1) continue;
    const std::uint8_t* begin = marker->data;
    const std::uint8_t* end = marker->data + marker->data_length;
    if (starts_with(marker, "Exif\0\0"sv)) {
      if (!out.exif) {
        out.exif.emplace(begin, end);
      } else {
        out.exif->insert(out.exif->end(), begin + 6, end);
      }
    } else if (starts_with(marker, "http://ns.adobe.com/xap/1.0/\0"sv)) {
      out.xmp.emplace(reinterpret_cast<const char*>(begin) + 29, reinterpret_cast<const char*>(end));
    }
  }
}

}  // namespace

DecodedImage decode_jpeg(Bytes file, const std::string& label, const ImageLimits& limits) {
  JpegDecoder decoder;
  jpeg_decompress_struct* info = decoder.info();
  if (!read_header(info, decoder.errors(), file.data(), static_cast<unsigned long>(file.size()))) decoder.fail(label);
  check_image_size(info->image_width, info->image_height, limits, label);
  DecodedImage out;
  read_metadata(info, out);  // now: libjpeg frees the saved markers in jpeg_finish_decompress

  // PIL's modes by component count: L, RGB, and CMYK (taken as Adobe-inverted, like PIL does).
  J_COLOR_SPACE out_space = JCS_RGB;
  switch (info->num_components) {
    case 1: out_space = JCS_GRAYSCALE; break;
    case 3: out_space = JCS_RGB; break;
    case 4: out_space = JCS_CMYK; break;
    default:
      throw Unsupported(label + ": JPEG with " + std::to_string(info->num_components) +
                        " colour components (PIL handles 1, 3 or 4)");
  }
  if (!start(info, decoder.errors(), out_space)) decoder.fail(label);
  const auto width = static_cast<std::int64_t>(info->output_width);
  const auto height = static_cast<std::int64_t>(info->output_height);
  const auto components = static_cast<std::size_t>(info->output_components);
  check_image_size(width, height, limits, label);
  std::vector<std::uint8_t> samples(static_cast<std::size_t>(width * height) * components);
  if (!read_rows(info, decoder.errors(), samples.data(), static_cast<std::size_t>(width) * components)) {
    decoder.fail(label);
  }
  if (decoder.errors()->premature_end) throw InvalidInput(label + ": the JPEG file is truncated");

  out.image = make_image(width, height);
  std::uint8_t* rgb = out.image.pixels.data();
  const std::size_t count = static_cast<std::size_t>(width * height);
  if (components == 1) {
    for (std::size_t i = 0; i < count; ++i) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = samples[i];
  } else if (components == 3) {
    out.image.pixels = std::move(samples);
  } else {
    // PIL unpacks CMYK JPEGs as inverted ("CMYK;I"), then converts with its cmyk2rgb:
    // channel = nk - round(value * nk / 255) with nk = 255 - k, in integer arithmetic.
    const auto mul_div_255 = [](int a, int b) {
      const int t = a * b + 128;
      return ((t >> 8) + t) >> 8;
    };
    for (std::size_t i = 0; i < count; ++i) {
      const int inverse_k = samples[4 * i + 3];  // 255 - (255 - stored k)
      for (std::size_t c = 0; c < 3; ++c) {
        const int value = 255 - samples[4 * i + c];
        rgb[3 * i + c] = static_cast<std::uint8_t>(inverse_k - mul_div_255(value, inverse_k));
      }
    }
  }
  return out;
}

}  // namespace q3vl::image_codecs
