#include "q3vl/image.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <system_error>

#include "q3vl/error.h"
#include "media/image_codecs.h"

namespace q3vl {
namespace {

using image_codecs::Bytes;

bool starts_with(Bytes bytes, std::string_view magic, std::size_t at = 0) {
  return bytes.size() >= at + magic.size() && std::memcmp(bytes.data() + at, magic.data(), magic.size()) == 0;
}

// Formats that are recognisable but not decoded here, so the error can say what the file is.
std::string_view other_format_name(Bytes bytes) {
  using namespace std::string_view_literals;
  if (starts_with(bytes, "II*\0"sv) || starts_with(bytes, "MM\0*"sv)) return "TIFF";
  if (starts_with(bytes, "ftyp"sv, 4)) return "HEIF/AVIF (ISO media)";
  if (starts_with(bytes, "\0\0\0\x0cjP  "sv) || starts_with(bytes, "\xff\x4f\xff\x51"sv)) return "JPEG 2000";
  if (starts_with(bytes, "\xff\x0a"sv)) return "JPEG XL";
  if (starts_with(bytes, "\0\0\1\0"sv)) return "ICO";
  if (starts_with(bytes, "8BPS"sv)) return "PSD";
  if (starts_with(bytes, "qoif"sv)) return "QOI";
  if (starts_with(bytes, "%PDF"sv)) return "PDF";
  if (starts_with(bytes, "<svg"sv) || starts_with(bytes, "<?xml"sv)) return "SVG/XML";
  if (starts_with(bytes, "RIFF"sv)) return "RIFF (not WebP)";
  return {};
}

std::string first_bytes_hex(Bytes bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < std::min<std::size_t>(bytes.size(), 8); ++i) {
    if (i) out += ' ';
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 15];
  }
  return out;
}

}  // namespace

ImageFormat detect_image_format(std::span<const std::uint8_t> bytes) {
  using namespace std::string_view_literals;
  if (starts_with(bytes, "\xff\xd8\xff"sv)) return ImageFormat::Jpeg;
  if (starts_with(bytes, "\x89PNG\r\n\x1a\n"sv)) return ImageFormat::Png;
  if (starts_with(bytes, "RIFF"sv) && starts_with(bytes, "WEBP"sv, 8)) return ImageFormat::WebP;
  if (starts_with(bytes, "GIF87a"sv) || starts_with(bytes, "GIF89a"sv)) return ImageFormat::Gif;
  if (starts_with(bytes, "BM"sv)) return ImageFormat::Bmp;
  return ImageFormat::Unknown;
}

std::string_view image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Png: return "PNG";
    case ImageFormat::WebP: return "WebP";
    case ImageFormat::Bmp: return "BMP";
    case ImageFormat::Gif: return "GIF";
    case ImageFormat::Unknown: break;
  }
  return "unknown";
}

RgbImage decode_image_memory(std::span<const std::uint8_t> bytes, const std::string& label, const ImageLimits& limits) {
  if (bytes.empty()) throw InvalidInput(label + ": the image file is empty");
  if (static_cast<std::uint64_t>(bytes.size()) > static_cast<std::uint64_t>(limits.max_file_bytes)) {
    throw InvalidInput(label + ": the image file has " + std::to_string(bytes.size()) + " bytes, more than the limit of " +
                       std::to_string(limits.max_file_bytes));
  }
  image_codecs::DecodedImage decoded;
  switch (detect_image_format(bytes)) {
    case ImageFormat::Jpeg: decoded = image_codecs::decode_jpeg(bytes, label, limits); break;
    case ImageFormat::Png: decoded = image_codecs::decode_png(bytes, label, limits); break;
    case ImageFormat::WebP: decoded = image_codecs::decode_webp(bytes, label, limits); break;
    case ImageFormat::Bmp: decoded = image_codecs::decode_bmp(bytes, label, limits); break;
    case ImageFormat::Gif: decoded = image_codecs::decode_gif(bytes, label, limits); break;
    case ImageFormat::Unknown: {
      const std::string_view other = other_format_name(bytes);
      if (!other.empty()) {
        throw Unsupported(label + ": " + std::string(other) +
                          " images are not supported (supported: JPEG, PNG, WebP, BMP, GIF)");
      }
      throw Unsupported(label + ": not a JPEG, PNG, WebP, BMP or GIF file (it starts with " + first_bytes_hex(bytes) +
                        "); the format is recognised by content, not by the file name");
    }
  }
  // PIL: the EXIF Orientation entry if there is one, otherwise the XMP tiff:Orientation.
  std::optional<int> orientation;
  if (decoded.exif) orientation = image_codecs::exif_orientation(*decoded.exif);
  if (!orientation && decoded.xmp) orientation = image_codecs::xmp_orientation(*decoded.xmp);
  return image_codecs::apply_orientation(std::move(decoded.image), orientation.value_or(1));
}

RgbImage decode_image_file(const std::filesystem::path& path, const ImageLimits& limits) {
  const std::string label = path.string();
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    throw InvalidInput(label + ": " + (std::filesystem::exists(path, error) ? "not a regular file" : "no such file"));
  }
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  if (error) throw InvalidInput(label + ": cannot read the file size (" + error.message() + ")");
  if (size > static_cast<std::uintmax_t>(limits.max_file_bytes)) {
    throw InvalidInput(label + ": the image file has " + std::to_string(size) + " bytes, more than the limit of " +
                       std::to_string(limits.max_file_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInput(label + ": cannot open the file");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (in.gcount() != static_cast<std::streamsize>(bytes.size())) throw InvalidInput(label + ": cannot read the file");
  RgbImage image = decode_image_memory(bytes, label, limits);
  image.source = label;
  return image;
}

namespace image_codecs {

void check_image_size(std::int64_t width, std::int64_t height, const ImageLimits& limits, const std::string& label) {
  if (width <= 0 || height <= 0) {
    throw InvalidInput(label + ": the image is " + std::to_string(width) + "x" + std::to_string(height) +
                       " pixels; both sides must be positive");
  }
  if (width > limits.max_pixels / height) {
    throw InvalidInput(label + ": the image is " + std::to_string(width) + "x" + std::to_string(height) +
                       " pixels, more than the limit of " + std::to_string(limits.max_pixels) + " pixels");
  }
}

RgbImage make_image(std::int64_t width, std::int64_t height) {
  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.assign(static_cast<std::size_t>(width * height * 3), 0);
  return image;
}

namespace {

// A bounds-checked reader of TIFF-ordered integers.
struct TiffReader {
  Bytes data;
  bool big_endian = false;

  bool has(std::uint64_t offset, std::uint64_t length) const {
    return offset <= data.size() && length <= data.size() - offset;
  }
  std::uint32_t u16(std::size_t at) const {
    return big_endian ? (std::uint32_t{data[at]} << 8) | data[at + 1] : (std::uint32_t{data[at + 1]} << 8) | data[at];
  }
  std::uint32_t u32(std::size_t at) const {
    return big_endian ? (u16(at) << 16) | u16(at + 2) : (u16(at + 2) << 16) | u16(at);
  }
};

// Bytes per value of each TIFF field type PIL's ImageFileDirectory loads (0: skipped type).
std::uint32_t tiff_type_size(std::uint32_t type) {
  switch (type) {
    case 1: case 2: case 6: case 7: return 1;  // BYTE, ASCII, SBYTE, UNDEFINED
    case 3: case 8: return 2;                  // SHORT, SSHORT
    case 4: case 9: case 11: case 13: return 4;  // LONG, SLONG, FLOAT, IFD
    case 5: case 10: case 12: return 8;        // RATIONAL, SRATIONAL, DOUBLE
    default: return 0;
  }
}

// The orientation PIL derives from an Orientation entry's first value: integers, and rationals or
// floats that equal an integer (PIL compares them with ==); BYTE and text values never match.
int orientation_value(const TiffReader& tiff, std::uint32_t type, std::size_t at) {
  switch (type) {
    case 3: return static_cast<int>(tiff.u16(at));
    case 8: return static_cast<std::int16_t>(tiff.u16(at));
    case 4: return tiff.u32(at) <= 8 ? static_cast<int>(tiff.u32(at)) : 0;
    case 9: return static_cast<std::int32_t>(tiff.u32(at));
    case 5: case 10: {
      const std::uint32_t numerator = tiff.u32(at), denominator = tiff.u32(at + 4);
      if (type == 5) return denominator && numerator % denominator == 0 ? static_cast<int>(numerator / denominator) : 0;
      const auto n = static_cast<std::int32_t>(numerator), d = static_cast<std::int32_t>(denominator);
      return d && n % d == 0 && n / d >= 0 && n / d <= 8 ? n / d : 0;
    }
    case 11: {
      float value;
      const std::uint32_t raw = tiff.u32(at);
      std::memcpy(&value, &raw, sizeof value);
      return value >= 0 && value <= 8 && value == std::floor(value) ? static_cast<int>(value) : 0;
    }
    case 12: {
      double value;
      const std::uint64_t raw = (std::uint64_t{tiff.big_endian ? tiff.u32(at) : tiff.u32(at + 4)} << 32) |
                                (tiff.big_endian ? tiff.u32(at + 4) : tiff.u32(at));
      std::memcpy(&value, &raw, sizeof value);
      return value >= 0 && value <= 8 && value == std::floor(value) ? static_cast<int>(value) : 0;
    }
    default: return 0;
  }
}

}  // namespace

std::optional<int> exif_orientation(Bytes exif) {
  using namespace std::string_view_literals;
  while (starts_with(exif, "Exif\0\0"sv)) exif = exif.subspan(6);
  TiffReader tiff{exif};
  // PIL raises on a block that is not classic TIFF; a decoder that gives up on the whole image for a
  // broken metadata block would be worse, so such a block just carries no orientation here.
  if (starts_with(exif, "MM\0*"sv)) {
    tiff.big_endian = true;
  } else if (!starts_with(exif, "II*\0"sv)) {
    return std::nullopt;
  }
  const std::uint32_t ifd = tiff.u32(4);
  if (!tiff.has(ifd, 2)) return std::nullopt;
  const std::uint32_t entries = tiff.u16(ifd);
  std::optional<int> orientation;
  for (std::uint32_t i = 0; i < entries; ++i) {
    const std::uint64_t entry = std::uint64_t{ifd} + 2 + 12ull * i;
    if (!tiff.has(entry, 12)) break;  // PIL stops at a truncated directory, keeping what it read
    const auto at = static_cast<std::size_t>(entry);
    const std::uint32_t tag = tiff.u16(at), type = tiff.u16(at + 2), count = tiff.u32(at + 4);
    const std::uint32_t unit = tiff_type_size(type);
    if (unit == 0) continue;
    const std::uint64_t size = std::uint64_t{count} * unit;
    std::size_t value_at = at + 8;
    if (size > 4) {
      const std::uint32_t offset = tiff.u32(at + 8);
      if (!tiff.has(offset, size)) break;  // PIL's read of out-of-line data fails and ends the directory
      value_at = offset;
    }
    if (size == 0) continue;
    if (tag == 0x0112) orientation = orientation_value(tiff, type, value_at);  // a later duplicate wins, as in PIL
  }
  return orientation;
}

std::optional<int> xmp_orientation(std::string_view xmp) {
  static constexpr std::string_view kKey = "tiff:Orientation";
  for (std::size_t at = xmp.find(kKey); at != std::string_view::npos; at = xmp.find(kKey, at + 1)) {
    std::string_view rest = xmp.substr(at + kKey.size());
    if (rest.starts_with("=\"")) {
      rest.remove_prefix(2);
    } else if (rest.starts_with(">")) {
      rest.remove_prefix(1);
    } else {
      continue;
    }
    if (!rest.empty() && rest[0] >= '0' && rest[0] <= '9') return rest[0] - '0';
  }
  return std::nullopt;
}

RgbImage apply_orientation(RgbImage image, int orientation) {
  if (orientation < 2 || orientation > 8) return image;
  const std::int64_t w = image.width, h = image.height;
  const bool swaps_sides = orientation >= 5;  // TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90
  RgbImage out;
  out.width = swaps_sides ? h : w;
  out.height = swaps_sides ? w : h;
  out.pixels.resize(image.pixels.size());
  for (std::int64_t y = 0; y < out.height; ++y) {
    for (std::int64_t x = 0; x < out.width; ++x) {
      // Source pixel of output (x, y) for each of PIL's Image.Transpose methods.
      std::int64_t sx = x, sy = y;
      switch (orientation) {
        case 2: sx = w - 1 - x; break;                   // FLIP_LEFT_RIGHT
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;   // ROTATE_180
        case 4: sy = h - 1 - y; break;                   // FLIP_TOP_BOTTOM
        case 5: sx = y; sy = x; break;                   // TRANSPOSE
        case 6: sx = y; sy = h - 1 - x; break;           // ROTATE_270 (90 degrees clockwise)
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;   // TRANSVERSE
        case 8: sx = w - 1 - y; sy = x; break;           // ROTATE_90 (counter-clockwise)
        default: break;
      }
      const auto from = static_cast<std::size_t>((sy * w + sx) * 3);
      const auto to = static_cast<std::size_t>((y * out.width + x) * 3);
      std::memcpy(out.pixels.data() + to, image.pixels.data() + from, 3);
    }
  }
  return out;
}

}  // namespace image_codecs
}  // namespace q3vl
