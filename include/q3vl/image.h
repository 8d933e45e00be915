#pragma once
// Image files -> 8-bit RGB exactly as Hugging Face sees them when a chat message names an image
// file: transformers' load_image opens it with PIL, applies ImageOps.exif_transpose and
// convert("RGB") (docs/model-math.md §3.1). Each format follows PIL's conversion rules, including the odd ones:
// alpha is dropped (not composited), 16-bit samples keep their high byte except 16-bit grey,
// which PIL clips to 255, and palette indices beyond the palette are black.
//
// Formats are recognised by their first bytes, never by the file name: JPEG (libjpeg-turbo, the
// decoder PIL uses), PNG (libpng), WebP (libwebp), BMP and GIF (first frame). EXIF orientation is
// applied wherever PIL applies it: JPEG, PNG and WebP EXIF, and the XMP tiff:Orientation fallback.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace q3vl {

struct RgbImage {
  std::int64_t width = 0, height = 0;
  std::vector<std::uint8_t> pixels;  // row-major HWC RGB, width * height * 3 bytes
  std::string source;                // where it came from (the file name), for messages
};

// Guards against decompression bombs and runaway files; exceeding either is InvalidInput.
struct ImageLimits {
  std::int64_t max_pixels = 100'000'000;
  std::int64_t max_file_bytes = 512ll << 20;
};

enum class ImageFormat { Unknown, Jpeg, Png, WebP, Bmp, Gif };

// The format announced by the first bytes of a file (Unknown when none matches).
ImageFormat detect_image_format(std::span<const std::uint8_t> bytes);
std::string_view image_format_name(ImageFormat format);

// Decodes a whole image file. Throws InvalidInput (naming the file and the problem) for missing,
// empty, truncated, corrupt or over-limit files, Unsupported for formats or variants not handled.
RgbImage decode_image_file(const std::filesystem::path& path, const ImageLimits& limits = {});
// The same for bytes already in memory; `label` names them in error messages.
RgbImage decode_image_memory(std::span<const std::uint8_t> bytes, const std::string& label,
                             const ImageLimits& limits = {});

}  // namespace q3vl
