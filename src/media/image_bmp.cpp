// BMP, decoded here following PIL's BmpImagePlugin rule by rule (it has several of its own):
// 16-bit samples widen as v * 255 / max, 32-bit files ignore their alpha, only PIL's list of
// bitfield masks is accepted, a palette that is exactly a grey ramp 0, 1, 2, ... makes 8-bit files
// greyscale (indices past the ramp then show as their own grey level, not black), and RLE streams
// are expanded the way PIL's Python RLE decoder does it.
#include <algorithm>
#include <array>
#include <string_view>

#include "q3vl/error.h"
#include "media/image_codecs.h"

namespace q3vl::image_codecs {
namespace {

enum Compression : std::uint32_t { kRaw = 0, kRle8 = 1, kRle4 = 2, kBitfields = 3 };

struct BmpFile {
  Bytes bytes;
  const std::string& label;

  [[noreturn]] void truncated(const std::string& what) const {
    throw InvalidInput(label + ": the BMP file is truncated (" + what + ")");
  }
  std::uint32_t u16(std::uint64_t at) const {
    if (at + 2 > bytes.size()) truncated("header");
    return std::uint32_t{bytes[at]} | (std::uint32_t{bytes[at + 1]} << 8);
  }
  std::uint32_t u32(std::uint64_t at) const { return u16(at) | (u16(at + 2) << 16); }
};

// Which byte of a little-endian 32-bit pixel holds R, G and B, for the masks PIL accepts.
std::optional<std::array<int, 3>> byte_positions(std::array<std::uint32_t, 4> masks) {
  using Masks = std::array<std::uint32_t, 4>;
  static constexpr std::array<Masks, 8> kSupported = {{{0xFF0000, 0xFF00, 0xFF, 0x0},
                                                       {0xFF000000, 0xFF0000, 0xFF00, 0x0},
                                                       {0xFF000000, 0xFF00, 0xFF, 0x0},
                                                       {0xFF000000, 0xFF0000, 0xFF00, 0xFF},
                                                       {0xFF, 0xFF00, 0xFF0000, 0xFF000000},
                                                       {0xFF0000, 0xFF00, 0xFF, 0xFF000000},
                                                       {0xFF000000, 0xFF00, 0xFF, 0xFF0000},
                                                       {0x0, 0x0, 0x0, 0x0}}};
  bool known = false;
  for (const Masks& candidate : kSupported) known = known || candidate == masks;
  if (!known) return std::nullopt;
  if (masks[0] == 0) return std::array<int, 3>{2, 1, 0};  // all-zero masks: PIL reads BGRA
  std::array<int, 3> positions{};
  for (std::size_t c = 0; c < 3; ++c) {
    int byte = 0;
    while ((masks[c] >> (8 * byte)) != 0xFF) ++byte;
    positions[c] = byte;
  }
  return positions;
}

// PIL's BmpRleDecoder, including its quirks: an odd-length absolute run in RLE4 loses its last
// pixel, end-of-line pads to the next multiple of the width only when not already there, and word
// alignment is by absolute file position. Returns palette indices, first row first in file order.
std::vector<std::uint8_t> expand_rle(const BmpFile& file, std::uint64_t position, std::int64_t width,
                                     std::int64_t height, bool rle4) {
  const auto size = static_cast<std::uint64_t>(width * height);
  const auto row = static_cast<std::uint64_t>(width);
  std::vector<std::uint8_t> data;
  data.reserve(static_cast<std::size_t>(size));
  const Bytes bytes = file.bytes;
  const auto read = [&](std::uint64_t& at) -> int { return at < bytes.size() ? bytes[at++] : -1; };
  std::uint64_t x = 0;
  while (data.size() < size) {
    const int count = read(position);
    const int value = read(position);
    if (count < 0 || value < 0) break;
    if (count > 0) {  // a run of one value (RLE4: two alternating nibbles)
      std::uint64_t run = static_cast<std::uint64_t>(count);
      if (x + run > row) run = x < row ? row - x : 0;
      for (std::uint64_t i = 0; i < run; ++i) {
        data.push_back(static_cast<std::uint8_t>(!rle4 ? value : i % 2 == 0 ? value >> 4 : value & 15));
      }
      x += run;
    } else if (value == 0) {  // end of line
      while (data.size() % row != 0) data.push_back(0);
      x = 0;
    } else if (value == 1) {  // end of bitmap
      break;
    } else if (value == 2) {  // delta: skip right and up
      const int right = read(position);
      const int up = read(position);
      if (right < 0 || up < 0) break;
      data.resize(data.size() + static_cast<std::size_t>(right) + static_cast<std::size_t>(up) * row, 0);
      x = data.size() % row;
    } else {  // absolute run of `value` pixels
      const std::uint64_t wanted = rle4 ? static_cast<std::uint64_t>(value) / 2 : static_cast<std::uint64_t>(value);
      const std::uint64_t available = position < bytes.size() ? bytes.size() - position : 0;
      const std::uint64_t got = std::min(wanted, available);
      for (std::uint64_t i = 0; i < got; ++i) {
        const std::uint8_t byte = bytes[position + i];
        if (rle4) {
          data.push_back(byte >> 4);
          data.push_back(byte & 15);
        } else {
          data.push_back(byte);
        }
      }
      position += got;
      if (got < wanted) break;
      x += static_cast<std::uint64_t>(value);
      if (position % 2 != 0) ++position;
    }
  }
  if (data.size() < size) {
    throw InvalidInput(file.label + ": the BMP's RLE data ends before the image is complete (" +
                       std::to_string(data.size()) + " of " + std::to_string(size) + " pixels)");
  }
  data.resize(static_cast<std::size_t>(size));
  return data;
}

struct BmpHeader {
  std::uint64_t data_offset = 0;  // as written: 0 means right after the header and palette
  std::uint32_t header_size = 0;
  std::int64_t width = 0;
  std::int64_t height = 0;
  std::uint32_t bits = 0;
  std::uint32_t compression = kRaw;
  std::uint32_t colors = 0;  // palette entries; 0 means 2^bits
  std::uint32_t palette_entry = 4;  // bytes per palette entry
  bool top_down = false;
  std::array<std::uint32_t, 4> masks{};  // R, G, B, A bitfields
};

// The file header and the DIB header, of each size PIL reads; checks the depth.
BmpHeader read_header(const BmpFile& file) {
  BmpHeader header;
  header.data_offset = file.u32(10);
  header.header_size = file.u32(14);
  const std::uint32_t size = header.header_size;
  if (size == 12) {  // OS/2 1.x / BITMAPCOREHEADER: 16-bit sizes, 3-byte palette entries
    header.width = file.u16(18);
    header.height = file.u16(20);
    header.bits = file.u16(24);
    header.palette_entry = 3;
  } else if (size == 40 || size == 52 || size == 56 || size == 64 || size == 108 || size == 124) {
    if (14ull + size > file.bytes.size()) file.truncated("header");
    // PIL reads the width unsigned, and a height whose top byte is 0xFF as a top-down image.
    header.width = file.u32(18);
    const std::uint32_t raw_height = file.u32(22);
    header.top_down = file.bytes[25] == 0xFF;
    header.height = header.top_down ? static_cast<std::int64_t>((1ull << 32) - raw_height)
                                    : static_cast<std::int64_t>(raw_height);
    header.bits = file.u16(28);
    header.compression = file.u32(30);
    header.colors = file.u32(46);
    if (header.compression == kBitfields) {
      // Masks follow a 40-byte header; larger headers hold them (alpha from 56 bytes on). Either
      // way they start at file offset 54.
      header.masks = {file.u32(54), file.u32(58), file.u32(62), size >= 56 ? file.u32(66) : 0};
    }
  } else {
    throw Unsupported(file.label + ": BMP header of " + std::to_string(size) + " bytes (PIL reads 12, 40, 52, 56, "
                      "64, 108 or 124)");
  }
  const std::uint32_t bits = header.bits;
  if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32) {
    throw Unsupported(file.label + ": BMP with " + std::to_string(bits) + " bits per pixel");
  }
  return header;
}

// How pixels are stored, by depth and compression, as PIL maps them to its raw modes.
enum class Layout { Palette, Bgr555, Bgr565, Bgr24, Bytes32 };

struct PixelFormat {
  Layout layout = Layout::Palette;
  std::array<int, 3> channel_bytes{2, 1, 0};  // Bytes32: which byte holds R, G, B (BGRX)
};

PixelFormat pixel_format(const BmpHeader& header, const std::string& label) {
  const std::uint32_t bits = header.bits;
  const std::uint32_t compression = header.compression;
  PixelFormat format;
  if (compression == kRaw) {
    format.layout =
        bits == 16 ? Layout::Bgr555 : bits == 24 ? Layout::Bgr24 : bits == 32 ? Layout::Bytes32 : Layout::Palette;
  } else if (compression == kBitfields) {
    const auto positions = bits == 32 ? byte_positions(header.masks) : std::nullopt;
    const std::array<std::uint32_t, 3> rgb{header.masks[0], header.masks[1], header.masks[2]};
    if (positions) {
      format.layout = Layout::Bytes32;
      format.channel_bytes = *positions;
    } else if (bits == 24 && rgb == std::array<std::uint32_t, 3>{0xFF0000, 0xFF00, 0xFF}) {
      format.layout = Layout::Bgr24;
    } else if (bits == 16 && rgb == std::array<std::uint32_t, 3>{0xF800, 0x7E0, 0x1F}) {
      format.layout = Layout::Bgr565;
    } else if (bits == 16 && rgb == std::array<std::uint32_t, 3>{0x7C00, 0x3E0, 0x1F}) {
      format.layout = Layout::Bgr555;
    } else {
      throw Unsupported(label + ": BMP bitfield masks of this layout are not supported (PIL rejects them too)");
    }
  } else if ((compression == kRle8 && bits == 8) || (compression == kRle4 && bits == 4)) {
    format.layout = Layout::Palette;
  } else {
    throw Unsupported(label + ": BMP compression " + std::to_string(compression) + " with " + std::to_string(bits) +
                      " bits per pixel");
  }
  return format;
}

struct Palette {
  std::uint32_t colors = 0;  // declared entries (the data offset skips them all)
  std::vector<std::array<std::uint8_t, 3>> entries;  // those the file holds, as RGB
  bool grey_ramp = false;  // 8-bit data read as grey levels instead

  void put(std::uint8_t* dst, std::uint8_t index) const {
    if (grey_ramp) {
      dst[0] = dst[1] = dst[2] = index;
    } else if (index < entries.size()) {
      dst[0] = entries[index][0];
      dst[1] = entries[index][1];
      dst[2] = entries[index][2];
    }  // else black, like PIL's palette beyond its entries
  }
};

// The palette, right after the header.
Palette read_palette(const BmpFile& file, const BmpHeader& header) {
  Palette palette;
  palette.colors = header.colors == 0 ? 1u << header.bits : header.colors;
  if (palette.colors > 65536) {  // PIL's limit; only the first 256 entries can ever be used
    throw InvalidInput(file.label + ": BMP palette of " + std::to_string(palette.colors) + " colours (at most 65536)");
  }
  // PIL reads the palette with a plain read(): a file that ends early (or a palette that runs into
  // the pixel data) just gives fewer or odd entries, never an error.
  const Bytes bytes = file.bytes;
  const std::uint64_t palette_at = 14ull + header.header_size;
  const std::uint64_t available = palette_at < bytes.size() ? (bytes.size() - palette_at) / header.palette_entry : 0;
  const auto entries = static_cast<std::uint32_t>(std::min<std::uint64_t>(palette.colors, available));
  bool grey_ramp = entries == palette.colors;
  for (std::uint32_t i = 0; i < entries; ++i) {
    const std::uint8_t* entry = bytes.data() + palette_at + std::uint64_t{header.palette_entry} * i;
    palette.entries.push_back({entry[2], entry[1], entry[0]});
    const std::uint32_t expected = palette.colors == 2 ? i * 255 : i & 255;
    grey_ramp = grey_ramp && entry[0] == expected && entry[1] == expected && entry[2] == expected;
  }
  // PIL then reads 8-bit data as plain grey levels; its other grey-ramp cases (1-bit black and
  // white, or rare mismatched depths) give the same picture as the palette, so use the palette.
  palette.grey_ramp = grey_ramp && header.bits == 8 && palette.colors != 2;
  return palette;
}

// Where the pixel data starts. PIL skips the palette when the data offset points at it, and a
// zero data offset means "right after the header and palette".
std::uint64_t pixel_data_offset(const BmpHeader& header, const Palette* palette) {
  const std::uint64_t after_header =
      14ull + header.header_size + (header.compression == kBitfields && header.header_size == 40 ? 12 : 0);
  std::uint64_t offset = header.data_offset == 0 ? after_header : header.data_offset;
  const std::uint64_t palette_at = 14ull + header.header_size;
  if (palette != nullptr && offset == palette_at) {
    offset += std::uint64_t{header.palette_entry} * palette->colors;  // also the zero case
  }
  return offset;
}

void decode_rle_pixels(const BmpFile& file, const BmpHeader& header, std::uint64_t data_offset,
                       const Palette& palette, RgbImage& image) {
  const std::int64_t width = header.width;
  const std::int64_t height = header.height;
  const std::vector<std::uint8_t> indices =
      expand_rle(file, data_offset, width, height, header.compression == kRle4);
  std::uint8_t* rgb = image.pixels.data();
  for (std::int64_t y = 0; y < height; ++y) {
    const std::int64_t stored_row = header.top_down ? y : height - 1 - y;
    for (std::int64_t x = 0; x < width; ++x) {
      palette.put(rgb + (y * width + x) * 3, indices[static_cast<std::size_t>(stored_row * width + x)]);
    }
  }
}

// One stored row of uncompressed pixels to RGB.
void convert_row(const std::uint8_t* src, std::uint8_t* dst, std::int64_t width, std::uint32_t bits,
                 const PixelFormat& format, const Palette& palette) {
  for (std::int64_t x = 0; x < width; ++x, dst += 3) {
    switch (format.layout) {
      case Layout::Palette: {
        const std::uint64_t bit = static_cast<std::uint64_t>(x) * bits;
        const std::uint8_t byte = src[bit / 8];
        const auto index = static_cast<std::uint8_t>((byte >> (8 - bits - bit % 8)) & ((1u << bits) - 1));
        palette.put(dst, index);
        break;
      }
      case Layout::Bgr555:
      case Layout::Bgr565: {
        const std::uint32_t v = std::uint32_t{src[2 * x]} | (std::uint32_t{src[2 * x + 1]} << 8);
        const bool six_green = format.layout == Layout::Bgr565;
        dst[0] = static_cast<std::uint8_t>(((v >> (six_green ? 11 : 10)) & 31) * 255 / 31);
        dst[1] = static_cast<std::uint8_t>(six_green ? ((v >> 5) & 63) * 255 / 63 : ((v >> 5) & 31) * 255 / 31);
        dst[2] = static_cast<std::uint8_t>((v & 31) * 255 / 31);
        break;
      }
      case Layout::Bgr24:
        dst[0] = src[3 * x + 2];
        dst[1] = src[3 * x + 1];
        dst[2] = src[3 * x];
        break;
      case Layout::Bytes32:
        for (std::size_t c = 0; c < 3; ++c) dst[c] = src[4 * x + format.channel_bytes[c]];
        break;
    }
  }
}

void decode_raw_pixels(const BmpFile& file, const BmpHeader& header, std::uint64_t data_offset,
                       const PixelFormat& format, const Palette& palette, RgbImage& image) {
  const std::int64_t width = header.width;
  const std::int64_t height = header.height;
  const std::uint32_t bits = header.bits;
  const Bytes bytes = file.bytes;
  // Rows are padded to 4 bytes, but like PIL the last row needs no padding.
  const std::uint64_t stride = ((static_cast<std::uint64_t>(width) * bits + 31) >> 3) & ~std::uint64_t{3};
  const std::uint64_t needed =
      stride * static_cast<std::uint64_t>(height - 1) + (static_cast<std::uint64_t>(width) * bits + 7) / 8;
  if (data_offset > bytes.size() || needed > bytes.size() - data_offset) file.truncated("pixel data");
  for (std::int64_t y = 0; y < height; ++y) {
    const std::int64_t stored_row = header.top_down ? y : height - 1 - y;
    const std::uint8_t* src = bytes.data() + data_offset + stride * static_cast<std::uint64_t>(stored_row);
    convert_row(src, image.pixels.data() + y * width * 3, width, bits, format, palette);
  }
}

}  // namespace

DecodedImage decode_bmp(Bytes bytes, const std::string& label, const ImageLimits& limits) {
  const BmpFile file{bytes, label};
  const BmpHeader header = read_header(file);
  check_image_size(header.width, header.height, limits, label);
  const PixelFormat format = pixel_format(header, label);
  const bool indexed = format.layout == Layout::Palette;
  const Palette palette = indexed ? read_palette(file, header) : Palette{};
  const std::uint64_t data_offset = pixel_data_offset(header, indexed ? &palette : nullptr);

  DecodedImage out;
  out.image = make_image(header.width, header.height);
  if (header.compression == kRle8 || header.compression == kRle4) {
    decode_rle_pixels(file, header, data_offset, palette, out.image);
  } else {
    decode_raw_pixels(file, header, data_offset, format, palette, out.image);
  }
  return out;
}

}  // namespace q3vl::image_codecs
