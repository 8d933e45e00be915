// GIF, first frame, decoded here to match PIL's GifImagePlugin: the canvas is the logical screen
// (grown if the frame reaches past it), filled with the frame's transparent index or else index 0,
// the frame's indices drawn in place (transparent ones included, PIL keeps them on frame 0), and
// then PIL's convert("RGB"): the frame's palette (local, else global), black beyond its entries,
// or plain grey levels when there is no palette or it is exactly the grey ramp 0, 1, 2, ...
// (stb_image leaves transparent pixels black, which PIL does not.)
#include <algorithm>
#include <array>

#include "q3vl/error.h"
#include "media/image_codecs.h"

namespace q3vl::image_codecs {
namespace {

constexpr int kMaxCodeBits = 12;
constexpr int kTableSize = 1 << kMaxCodeBits;

class GifReader {
 public:
  GifReader(Bytes bytes, const std::string& label) : bytes_(bytes), label_(label) {}

  bool at_end() const { return position_ >= bytes_.size(); }
  std::size_t size() const { return bytes_.size(); }
  std::uint8_t peek() const { return bytes_[position_]; }  // only when !at_end()
  std::size_t position() const { return position_; }
  [[noreturn]] void truncated(const std::string& what) const {
    throw InvalidInput(label_ + ": the GIF file is truncated (" + what + ")");
  }
  std::uint8_t byte(const char* what) {
    if (at_end()) truncated(what);
    return bytes_[position_++];
  }
  std::uint32_t u16(const char* what) {
    const std::uint32_t low = byte(what);
    return low | (std::uint32_t{byte(what)} << 8);
  }
  Bytes take(std::size_t count, const char* what) {
    if (count > bytes_.size() - position_) truncated(what);
    const Bytes out = bytes_.subspan(position_, count);
    position_ += count;
    return out;
  }
  // One data sub-block (size byte + data); empty at the terminator.
  Bytes sub_block(const char* what) { return take(byte(what), what); }
  void skip_sub_blocks(const char* what) {
    while (!sub_block(what).empty()) {
    }
  }

 private:
  Bytes bytes_;
  const std::string& label_;
  std::size_t position_ = 0;
};

struct Palette {
  std::vector<std::array<std::uint8_t, 3>> colors;  // empty: grey levels (PIL mode "L")
};

// A colour table of 2^(bits) entries; PIL drops it (mode "L") when it is exactly the grey ramp.
Palette read_palette(GifReader& reader, int bits) {
  const std::size_t entries = std::size_t{1} << bits;
  const Bytes table = reader.take(3 * entries, "colour table");
  Palette palette;
  bool grey_ramp = true;
  for (std::size_t i = 0; i < entries; ++i) {
    palette.colors.push_back({table[3 * i], table[3 * i + 1], table[3 * i + 2]});
    grey_ramp = grey_ramp && table[3 * i] == i && table[3 * i + 1] == i && table[3 * i + 2] == i;
  }
  if (grey_ramp) palette.colors.clear();
  return palette;
}

// Variable-width LZW codes, least significant bit first, read across the data sub-blocks, with
// PIL's reading pattern, because it decides which damaged files PIL rejects: PIL feeds its decoder
// the file 64 KiB at a time from the start of the image data; the decoder takes a sub-block only
// once all of it has been read, and returns for more data at an end code. When the file has no
// more to give at that point, PIL reports it as truncated. A zero-size block does not end the data
// either: the next byte is read as the next block's size.
class CodeReader {
 public:
  explicit CodeReader(GifReader& reader)
      : reader_(reader), window_end_(std::min(reader.size(), reader.position() + kReadSize)) {}

  int next(int width) {
    while (bit_count_ < width) {
      while (block_left_ == 0) {
        while (!block_in_window()) {
          if (!read_more()) reader_.truncated("image data");
        }
        block_left_ = reader_.byte("image data");
      }
      bits_ |= std::uint32_t{reader_.byte("image data")} << bit_count_;
      bit_count_ += 8;
      --block_left_;
    }
    const int code = static_cast<int>(bits_ & ((1u << width) - 1));
    bits_ >>= width;
    bit_count_ -= width;
    return code;
  }

  // PIL reads the next 64 KiB of the file; false when there is nothing left to read.
  bool read_more() {
    if (window_end_ >= reader_.size()) return false;
    window_end_ = std::min(reader_.size(), window_end_ + kReadSize);
    return true;
  }

 private:
  static constexpr std::size_t kReadSize = 65536;  // ImageFile.decodermaxblock

  bool block_in_window() const {
    const std::size_t at = reader_.position();
    return at < window_end_ && at + 1 + reader_.peek() <= window_end_;
  }

  GifReader& reader_;
  std::size_t window_end_;
  std::uint32_t bits_ = 0;
  int bit_count_ = 0;
  int block_left_ = 0;
};

// Decodes exactly `out.size()` indices the way PIL's GifDecode.c does: it stops only when the frame
// is full; an end code met earlier is skipped if PIL would still find file data to read after it,
// and a file that runs out of data first is truncated (an error, as in PIL).
void decode_lzw(GifReader& reader, int min_code_bits, std::span<std::uint8_t> out, const std::string& label) {
  const int clear = 1 << min_code_bits;
  const int end = clear + 1;
  std::array<std::uint16_t, kTableSize> prefix{};
  std::array<std::uint8_t, kTableSize> suffix{};
  std::array<std::uint8_t, kTableSize> first{};  // first index of each code's string
  std::array<std::uint8_t, kTableSize> stack{};
  for (int code = 0; code < clear; ++code) {
    suffix[static_cast<std::size_t>(code)] = first[static_cast<std::size_t>(code)] = static_cast<std::uint8_t>(code);
  }
  CodeReader codes(reader);
  int width = min_code_bits + 1;
  int next_code = end + 1;
  int previous = -1;
  std::size_t written = 0;
  const auto corrupt = [&](int code) {
    throw InvalidInput(label + ": corrupt GIF image data (LZW code " + std::to_string(code) + " where at most " +
                       std::to_string(next_code) + " is possible)");
  };
  while (written < out.size()) {
    const int code = codes.next(width);
    if (code == end) {
      if (!codes.read_more()) reader.truncated("the image data ends before the frame is complete");
      continue;
    }
    if (code == clear) {
      width = min_code_bits + 1;
      next_code = end + 1;
      previous = -1;
      continue;
    }
    int string_code = code;
    std::size_t depth = 0;
    if (previous < 0) {
      if (code > clear) corrupt(code);
    } else if (code == next_code) {
      // The string being defined right now: previous string + its own first index.
      stack[depth++] = first[static_cast<std::size_t>(previous)];
      string_code = previous;
    } else if (code > next_code) {
      corrupt(code);
    }
    while (string_code >= clear) {
      if (string_code >= kTableSize) corrupt(code);  // only possible with 12-bit literals
      stack[depth++] = suffix[static_cast<std::size_t>(string_code)];
      string_code = prefix[static_cast<std::size_t>(string_code)];
    }
    stack[depth++] = static_cast<std::uint8_t>(string_code);
    while (depth > 0 && written < out.size()) out[written++] = stack[--depth];
    if (previous >= 0 && next_code < kTableSize) {
      const auto slot = static_cast<std::size_t>(next_code);
      prefix[slot] = static_cast<std::uint16_t>(previous);
      suffix[slot] = static_cast<std::uint8_t>(string_code);  // first index of the current string
      first[slot] = first[static_cast<std::size_t>(previous)];
      ++next_code;
      if (next_code == (1 << width) && width < kMaxCodeBits) ++width;
    }
    previous = code;
  }
}

// The logical screen descriptor and the global colour table.
struct Screen {
  std::int64_t width = 0;
  std::int64_t height = 0;
  Palette palette;
};

Screen read_screen(GifReader& reader) {
  reader.take(6, "signature");
  Screen screen;
  screen.width = reader.u16("screen descriptor");
  screen.height = reader.u16("screen descriptor");
  const std::uint8_t flags = reader.byte("screen descriptor");
  reader.take(2, "screen descriptor");  // background index, aspect ratio: unused by PIL's frame 0
  if (flags & 0x80) screen.palette = read_palette(reader, (flags & 7) + 1);
  return screen;
}

// Reads the blocks up to the first image descriptor and returns the transparent index: PIL keeps
// the last graphic control extension's transparency and silently skips stray bytes between blocks.
std::optional<std::uint8_t> skip_to_first_image(GifReader& reader, const std::string& label) {
  std::optional<std::uint8_t> transparency;
  while (true) {
    if (reader.at_end()) throw InvalidInput(label + ": the GIF file has no image (it ends before one)");
    const std::uint8_t introducer = reader.byte("block");
    if (introducer == 0x3B) throw InvalidInput(label + ": the GIF file has no image");
    if (introducer == 0x21) {
      // PIL reads the first sub-block, then skips sub-blocks up to a terminator, even when that
      // first one already was the terminator (only comments stop there).
      const std::uint8_t kind = reader.byte("extension");
      const Bytes block = reader.sub_block("extension");
      if (kind == 0xF9 && block.size() >= 4 && (block[0] & 1)) transparency = block[3];
      if (kind == 0xFE && block.empty()) continue;
      if (kind == 0xFF && block.size() >= 11 && std::equal(block.begin(), block.begin() + 11, "NETSCAPE2.0")) {
        reader.sub_block("extension");  // the loop count block
      }
      reader.skip_sub_blocks("extension");
    } else if (introducer == 0x2C) {
      return transparency;
    }
  }
}

// The image descriptor, the local colour table and the LZW minimum code size.
struct Frame {
  std::int64_t x0 = 0;
  std::int64_t y0 = 0;
  std::int64_t width = 0;
  std::int64_t height = 0;
  bool interlaced = false;
  std::optional<Palette> local_palette;
  int min_code_bits = 0;
};

Frame read_frame(GifReader& reader, const std::string& label) {
  Frame frame;
  frame.x0 = reader.u16("image descriptor");
  frame.y0 = reader.u16("image descriptor");
  frame.width = reader.u16("image descriptor");
  frame.height = reader.u16("image descriptor");
  const std::uint8_t flags = reader.byte("image descriptor");
  frame.interlaced = (flags & 0x40) != 0;
  if (flags & 0x80) frame.local_palette = read_palette(reader, (flags & 7) + 1);
  frame.min_code_bits = reader.byte("image data");
  // PIL accepts minimum code sizes up to 12 and keeps the low byte of wider literals.
  if (frame.min_code_bits > kMaxCodeBits) {
    throw InvalidInput(label + ": corrupt GIF image data (LZW minimum code size " +
                       std::to_string(frame.min_code_bits) + ")");
  }
  if (frame.width == 0 || frame.height == 0) throw InvalidInput(label + ": the first GIF frame is empty");
  return frame;
}

// The frame's indices drawn in place on a canvas filled with `background`.
std::vector<std::uint8_t> place_on_canvas(const std::vector<std::uint8_t>& indices, const Frame& frame,
                                          std::int64_t width, std::int64_t height, std::uint8_t background) {
  std::vector<std::uint8_t> canvas(static_cast<std::size_t>(width * height), background);
  // Interlaced frames store rows 0, 8, 16, ... then 4, 12, ..., then 2, 6, ..., then 1, 3, ...
  std::int64_t stored = 0;
  constexpr std::array<std::array<int, 2>, 4> kPasses = {{{0, 8}, {4, 8}, {2, 4}, {1, 2}}};
  for (std::size_t pass = 0; pass < (frame.interlaced ? kPasses.size() : 1); ++pass) {
    const std::int64_t start = frame.interlaced ? kPasses[pass][0] : 0;
    const std::int64_t step = frame.interlaced ? kPasses[pass][1] : 1;
    for (std::int64_t row = start; row < frame.height; row += step, ++stored) {
      const auto* src = indices.data() + stored * frame.width;
      std::copy(src, src + frame.width, canvas.begin() + (frame.y0 + row) * width + frame.x0);
    }
  }
  return canvas;
}

// PIL's convert("RGB"): palette colours, black beyond the palette, grey levels without one.
void paint(const std::vector<std::uint8_t>& canvas, const Palette& palette, RgbImage& image) {
  for (std::size_t i = 0; i < canvas.size(); ++i) {
    std::uint8_t* dst = image.pixels.data() + 3 * i;
    const std::uint8_t index = canvas[i];
    if (palette.colors.empty()) {
      dst[0] = dst[1] = dst[2] = index;
    } else if (index < palette.colors.size()) {
      dst[0] = palette.colors[index][0];
      dst[1] = palette.colors[index][1];
      dst[2] = palette.colors[index][2];
    }
  }
}

}  // namespace

DecodedImage decode_gif(Bytes bytes, const std::string& label, const ImageLimits& limits) {
  GifReader reader(bytes, label);
  const Screen screen = read_screen(reader);
  const std::optional<std::uint8_t> transparency = skip_to_first_image(reader, label);
  const Frame frame = read_frame(reader, label);
  const Palette& palette = frame.local_palette ? *frame.local_palette : screen.palette;
  const std::int64_t width = std::max(screen.width, frame.x0 + frame.width);  // PIL grows the canvas to hold the frame
  const std::int64_t height = std::max(screen.height, frame.y0 + frame.height);
  check_image_size(width, height, limits, label);

  std::vector<std::uint8_t> indices(static_cast<std::size_t>(frame.width * frame.height));
  decode_lzw(reader, frame.min_code_bits, indices, label);
  const std::vector<std::uint8_t> canvas = place_on_canvas(indices, frame, width, height, transparency.value_or(0));

  DecodedImage out;
  out.image = make_image(width, height);
  paint(canvas, palette, out.image);
  return out;
}

}  // namespace q3vl::image_codecs
