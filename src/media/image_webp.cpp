// WebP through libwebp's animation decoder, the API PIL uses for every WebP file (still or
// animated): the first frame composed on the canvas as non-premultiplied RGBA, alpha dropped.
#include <cstring>
#include <memory>

#include <webp/decode.h>
#include <webp/demux.h>

#include "q3vl/error.h"
#include "media/image_codecs.h"

namespace q3vl::image_codecs {
namespace {

struct DemuxDeleter {
  void operator()(WebPDemuxer* demux) const { WebPDemuxDelete(demux); }
};
struct AnimDecoderDeleter {
  void operator()(WebPAnimDecoder* decoder) const { WebPAnimDecoderDelete(decoder); }
};

// A metadata chunk ("EXIF", "XMP ") as PIL's WebPAnimDecoder.get_chunk returns it.
std::optional<std::vector<std::uint8_t>> chunk(WebPDemuxer* demux, const char* fourcc) {
  WebPChunkIterator iterator;
  if (!WebPDemuxGetChunk(demux, fourcc, 1, &iterator)) return std::nullopt;
  std::vector<std::uint8_t> bytes(iterator.chunk.bytes, iterator.chunk.bytes + iterator.chunk.size);
  WebPDemuxReleaseChunkIterator(&iterator);
  if (bytes.empty()) return std::nullopt;  // PIL skips empty chunks
  return bytes;
}

}  // namespace

DecodedImage decode_webp(Bytes file, const std::string& label, const ImageLimits& limits) {
  WebPData data{file.data(), file.size()};
  const std::unique_ptr<WebPDemuxer, DemuxDeleter> demux(WebPDemux(&data));
  if (!demux) throw InvalidInput(label + ": corrupt or truncated WebP file");
  const std::int64_t width = WebPDemuxGetI(demux.get(), WEBP_FF_CANVAS_WIDTH);
  const std::int64_t height = WebPDemuxGetI(demux.get(), WEBP_FF_CANVAS_HEIGHT);
  check_image_size(width, height, limits, label);  // before libwebp allocates the canvas

  DecodedImage out;
  out.exif = chunk(demux.get(), "EXIF");
  if (auto xmp = chunk(demux.get(), "XMP ")) out.xmp.emplace(xmp->begin(), xmp->end());

  WebPAnimDecoderOptions options;
  if (!WebPAnimDecoderOptionsInit(&options)) throw Error(label + ": libwebp version mismatch");
  options.color_mode = MODE_RGBA;
  options.use_threads = 0;
  const std::unique_ptr<WebPAnimDecoder, AnimDecoderDeleter> decoder(WebPAnimDecoderNew(&data, &options));
  if (!decoder) throw InvalidInput(label + ": corrupt WebP file (libwebp cannot decode it)");
  std::uint8_t* canvas = nullptr;
  int timestamp = 0;
  if (!WebPAnimDecoderGetNext(decoder.get(), &canvas, &timestamp) || !canvas) {
    throw InvalidInput(label + ": corrupt or truncated WebP file (the first frame does not decode)");
  }
  out.image = make_image(width, height);
  const std::size_t count = static_cast<std::size_t>(width * height);
  for (std::size_t i = 0; i < count; ++i) std::memcpy(out.image.pixels.data() + 3 * i, canvas + 4 * i, 3);
  return out;
}

}  // namespace q3vl::image_codecs
