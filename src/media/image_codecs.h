#pragma once
// Internal to the image decoder (media/image.cpp): one function per file format, plus the
// EXIF/XMP orientation helpers they share. Each decoder returns pixels as PIL's convert("RGB")
// would give them, before any EXIF orientation, together with the metadata PIL reads the
// orientation from.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "q3vl/image.h"

namespace q3vl::image_codecs {

struct DecodedImage {
  RgbImage image;
  // What PIL puts in info["exif"] (a TIFF block, with or without the "Exif\0\0" prefix) and the
  // XMP packet PIL searches for tiff:Orientation when the EXIF has no Orientation entry.
  std::optional<std::vector<std::uint8_t>> exif;
  std::optional<std::string> xmp;
};

using Bytes = std::span<const std::uint8_t>;

DecodedImage decode_jpeg(Bytes file, const std::string& label, const ImageLimits& limits);
DecodedImage decode_png(Bytes file, const std::string& label, const ImageLimits& limits);
DecodedImage decode_webp(Bytes file, const std::string& label, const ImageLimits& limits);
DecodedImage decode_bmp(Bytes file, const std::string& label, const ImageLimits& limits);
DecodedImage decode_gif(Bytes file, const std::string& label, const ImageLimits& limits);

// Throws InvalidInput unless width and height are positive and their product is within the limit.
// Called by every decoder before it allocates pixels.
void check_image_size(std::int64_t width, std::int64_t height, const ImageLimits& limits, const std::string& label);
// An image of checked size with zeroed (black) pixels.
RgbImage make_image(std::int64_t width, std::int64_t height);

// The EXIF Orientation entry of IFD0 as PIL reads it: nullopt when the block or the entry is
// missing (then PIL looks at the XMP), 0 when the entry exists but holds no usable integer.
std::optional<int> exif_orientation(Bytes exif);
// The first tiff:Orientation="N" or <tiff:Orientation>N in an XMP packet (PIL's regular expression).
std::optional<int> xmp_orientation(std::string_view xmp);
// Orientation 2..8 as ImageOps.exif_transpose applies it; any other value leaves the image as is.
RgbImage apply_orientation(RgbImage image, int orientation);

}  // namespace q3vl::image_codecs
