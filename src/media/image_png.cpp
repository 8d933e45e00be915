// PNG through libpng, with PIL's conversions to RGB done here on the raw samples: 16-bit colour
// keeps the high byte, 16-bit grey is clipped to 255 (PIL's I;16 -> L), low-bit grey is scaled,
// tRNS and alpha are ignored, and palette indices beyond the palette are black.
// (libpng rather than stb_image: stb reads palette entries past the PLTE chunk from uninitialised
// memory, and gives no access to the eXIf/text chunks that carry the EXIF orientation.)
#include <csetjmp>
#include <cstring>
#include <string_view>

#include <png.h>

#include "q3vl/error.h"
#include "media/image_codecs.h"

namespace q3vl::image_codecs {
namespace {

struct PngSource {
  Bytes file;
  std::size_t position = 8;  // after the signature, which the caller checked
};

// libpng's error callback must not return; it longjmps back to the stage function that called it.
struct PngErrors {
  std::jmp_buf jump;
  char message[200];
};

void on_error(png_structp png, png_const_charp message) {
  auto* errors = static_cast<PngErrors*>(png_get_error_ptr(png));
  std::strncpy(errors->message, message, sizeof errors->message - 1);
  std::longjmp(errors->jump, 1);
}

void on_warning(png_structp, png_const_charp) {}  // PIL is silent about what libpng only warns about

void on_read(png_structp png, png_bytep out, png_size_t length) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (length > source->file.size() - source->position) png_error(png, "the file ends early (truncated)");
  std::memcpy(out, source->file.data() + source->position, length);
  source->position += length;
}

struct PngHeader {
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  std::size_t row_bytes = 0;
};

// Stage functions: no C++ objects with destructors live here, so longjmp from libpng is safe.
bool read_header(png_structp png, png_infop info, PngErrors* errors, PngHeader* header) {
  if (setjmp(errors->jump)) return false;
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  // Past the header PIL stops checking: it never verifies the checksums of the image data or of
  // the chunks after it, and still uses those chunks.
  png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
  header->width = png_get_image_width(png, info);
  header->height = png_get_image_height(png, info);
  header->bit_depth = png_get_bit_depth(png, info);
  header->color_type = png_get_color_type(png, info);
  if (header->bit_depth < 8) png_set_packing(png);  // one byte per sample, values not scaled
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  header->row_bytes = png_get_rowbytes(png, info);
  return true;
}

bool read_rows(png_structp png, PngErrors* errors, png_bytepp rows) {
  if (setjmp(errors->jump)) return false;
  png_read_image(png, rows);
  return true;
}

bool read_trailer(png_structp png, png_infop end_info, PngErrors* errors) {
  if (setjmp(errors->jump)) return false;
  png_read_end(png, end_info);
  return true;
}

class PngReader {
 public:
  explicit PngReader(Bytes file) : source_{file} {
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, &errors_, on_error, on_warning);
    if (png_) info_ = png_create_info_struct(png_);
    if (png_) end_info_ = png_create_info_struct(png_);
    if (!png_ || !info_ || !end_info_) {
      png_destroy_read_struct(&png_, &info_, &end_info_);
      throw Error("libpng could not allocate its decoder");
    }
    png_set_read_fn(png_, &source_, on_read);
    png_set_user_limits(png_, 0x7fffffff, 0x7fffffff);  // ImageLimits decides, with a clearer message
    // PIL rejects a bad checksum in any chunk before the image data; libpng would only warn about
    // ancillary ones.
    png_set_crc_action(png_, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
  }
  ~PngReader() { png_destroy_read_struct(&png_, &info_, &end_info_); }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;

  png_structp png() const { return png_; }
  png_infop info() const { return info_; }
  png_infop end_info() const { return end_info_; }
  PngErrors* errors() { return &errors_; }
  const char* message() const { return errors_.message; }

 private:
  PngSource source_;
  PngErrors errors_{};
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
  png_infop end_info_ = nullptr;
};

// The EXIF block in ImageMagick's "Raw profile type exif" text: lines "", "exif", "<length>", then
// hex digits over any number of lines. Nullopt when the text is not such a profile.
std::optional<std::vector<std::uint8_t>> raw_profile_exif(std::string_view text) {
  std::size_t at = 0;
  for (int line = 0; line < 3 && at != std::string_view::npos; ++line) {
    at = text.find('\n', at);
    if (at != std::string_view::npos) ++at;
  }
  if (at == std::string_view::npos) return std::nullopt;
  std::vector<std::uint8_t> bytes;
  int high = -1;
  for (const char c : text.substr(at)) {
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    if (c == '\n' || c == ' ') continue;
    if (digit < 0) return std::nullopt;
    if (high < 0) {
      high = digit;
    } else {
      bytes.push_back(static_cast<std::uint8_t>(high * 16 + digit));
      high = -1;
    }
  }
  if (high >= 0) return std::nullopt;  // an odd number of digits
  return bytes;
}

// EXIF and XMP as PIL's PNG plugin finds them: the eXIf chunk, else ImageMagick's
// "Raw profile type exif" text; XMP in the XML:com.adobe.xmp text.
void read_metadata(png_structp png, png_infop info, DecodedImage& out) {
#ifdef PNG_eXIf_SUPPORTED
  png_bytep exif = nullptr;
  png_uint_32 exif_size = 0;
  if (png_get_eXIf_1(png, info, &exif_size, &exif) != 0 && exif && exif_size > 0) {
    out.exif.emplace(exif, exif + exif_size);
  }
#endif
  png_textp texts = nullptr;
  int count = 0;
  png_get_text(png, info, &texts, &count);
  for (int i = 0; i < count; ++i) {
    const std::string_view key = texts[i].key;
    const std::string_view text(texts[i].text, texts[i].text_length ? texts[i].text_length : texts[i].itxt_length);
    if (key == "XML:com.adobe.xmp") {
      out.xmp.emplace(text);
    } else if (key == "Raw profile type exif" && !out.exif) {
      if (auto bytes = raw_profile_exif(text)) out.exif = std::move(*bytes);
    }
  }
}

// The image data as libpng delivers it: one byte per sample (two, high first, at 16 bits).
struct PngSamples {
  std::vector<std::uint8_t> data;
  std::vector<png_bytep> rows;  // into data
  bool has_trailer = false;     // the chunks after the image data were read too
};

PngSamples read_samples(PngReader& reader, const PngHeader& header, const std::string& label) {
  const auto height = static_cast<std::size_t>(header.height);
  PngSamples samples;
  samples.data.resize(header.row_bytes * height);
  samples.rows.resize(height);
  for (std::size_t y = 0; y < height; ++y) samples.rows[y] = samples.data.data() + y * header.row_bytes;
  if (read_rows(reader.png(), reader.errors(), samples.rows.data())) {
    // PIL reads the chunks after the image data too (an eXIf there still counts) but tolerates a
    // damaged tail, even a missing IEND: what was read before a failure here still counts.
    read_trailer(reader.png(), reader.end_info(), reader.errors());
    samples.has_trailer = true;
  } else {
    // PIL stops reading as soon as the last row is complete. libpng goes on to check the end of
    // the compressed stream, so an error there (a bad zlib checksum, damage right after the
    // image data) still leaves a complete image: libpng has moved past the last row of the last
    // pass (pass 7 when interlaced) only once every row was written.
    const bool interlaced = png_get_interlace_type(reader.png(), reader.info()) != PNG_INTERLACE_NONE;
    const bool complete = interlaced ? png_get_current_pass_number(reader.png()) >= 7
                                     : png_get_current_row_number(reader.png()) >= header.height;
    if (!complete) throw InvalidInput(label + ": corrupt or truncated PNG file (" + reader.message() + ")");
  }
  return samples;
}

// What PIL's convert("RGB") needs to know about the samples.
struct SampleFormat {
  int color_type = 0;
  bool wide = false;  // 16 bits per sample
  int grey_scale = 1;  // low-bit grey to 0..255
  png_colorp palette = nullptr;
  int palette_size = 0;
};

SampleFormat sample_format(PngReader& reader, const PngHeader& header) {
  SampleFormat format;
  format.color_type = header.color_type;
  format.wide = header.bit_depth == 16;
  if (header.color_type == PNG_COLOR_TYPE_PALETTE) {
    png_get_PLTE(reader.png(), reader.info(), &format.palette, &format.palette_size);
  }
  // Low-bit grey scales to 0..255 the way PIL unpacks it (1-bit is PIL mode "1": 0 or 255).
  format.grey_scale = header.bit_depth < 8 ? 255 / ((1 << header.bit_depth) - 1) : 1;
  return format;
}

void convert_row(const std::uint8_t* row, std::uint8_t* dst, std::int64_t width, const SampleFormat& format,
                 const std::string& label) {
  const std::size_t sample_bytes = format.wide ? 2 : 1;
  for (std::int64_t x = 0; x < width; ++x, dst += 3) {
    const auto sample = [&](std::size_t channel, std::size_t channels) {
      return row + (static_cast<std::size_t>(x) * channels + channel) * sample_bytes;  // high byte first
    };
    switch (format.color_type) {
      case PNG_COLOR_TYPE_GRAY: {
        const std::uint8_t* s = sample(0, 1);
        std::uint8_t value = 0;
        if (format.wide) {
          const unsigned v = (unsigned{s[0]} << 8) | s[1];
          value = static_cast<std::uint8_t>(v > 255 ? 255 : v);  // PIL clips I;16 to L
        } else {
          value = static_cast<std::uint8_t>(s[0] * format.grey_scale);
        }
        dst[0] = dst[1] = dst[2] = value;
        break;
      }
      case PNG_COLOR_TYPE_GRAY_ALPHA: dst[0] = dst[1] = dst[2] = *sample(0, 2); break;
      case PNG_COLOR_TYPE_RGB:
        for (std::size_t c = 0; c < 3; ++c) dst[c] = *sample(c, 3);
        break;
      case PNG_COLOR_TYPE_RGB_ALPHA:
        for (std::size_t c = 0; c < 3; ++c) dst[c] = *sample(c, 4);
        break;
      case PNG_COLOR_TYPE_PALETTE: {
        const int index = row[x];
        if (index < format.palette_size) {
          dst[0] = format.palette[index].red;
          dst[1] = format.palette[index].green;
          dst[2] = format.palette[index].blue;
        }
        break;
      }
      default:
        throw Unsupported(label + ": PNG colour type " + std::to_string(format.color_type));
    }
  }
}

}  // namespace

DecodedImage decode_png(Bytes file, const std::string& label, const ImageLimits& limits) {
  PngReader reader(file);
  PngHeader header;
  if (!read_header(reader.png(), reader.info(), reader.errors(), &header)) {
    throw InvalidInput(label + ": corrupt PNG file (" + reader.message() + ")");
  }
  const std::int64_t width = header.width, height = header.height;
  check_image_size(width, height, limits, label);
  const PngSamples samples = read_samples(reader, header, label);

  DecodedImage out;
  read_metadata(reader.png(), reader.info(), out);
  if (samples.has_trailer) read_metadata(reader.png(), reader.end_info(), out);

  out.image = make_image(width, height);
  const SampleFormat format = sample_format(reader, header);
  for (std::int64_t y = 0; y < height; ++y) {
    convert_row(samples.rows[static_cast<std::size_t>(y)], out.image.pixels.data() + static_cast<std::size_t>(y * width * 3),
                width, format, label);
  }
  return out;
}

}  // namespace q3vl::image_codecs
