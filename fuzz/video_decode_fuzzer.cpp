// libFuzzer target for the video reader (libavformat probing and demuxing, the decoders,
// libswscale's conversion, our limits): any byte string must either open and decode its first
// frames into consistent images or be rejected with q3vl::InvalidInput / q3vl::Unsupported;
// anything else (a crash, a sanitizer report, another exception) is a bug. libav itself is not
// instrumented, so coverage guidance sees only our side of the calls.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "media/video_decode.h"
#include "q3vl/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Small limits keep single inputs within libFuzzer's memory and time budgets.
  q3vl::VideoLimits limits;
  limits.max_frame_pixels = 1 << 16;
  limits.max_total_frames = 1000;
  limits.max_file_bytes = 1 << 20;
  try {
    q3vl::VideoReader reader(std::span<const std::uint8_t>(data, size), "fuzz input", limits);
    const q3vl::VideoStreamInfo& info = reader.info();
    if (info.total_frames <= 0 || info.total_frames > limits.max_total_frames || info.width <= 0 || info.height <= 0 ||
        info.width * info.height > limits.max_frame_pixels || info.fps < 0) {
      __builtin_trap();
    }
    std::vector<std::int64_t> indices;
    for (std::int64_t i = 0; i < 3 && i < info.total_frames; ++i) indices.push_back(i);
    std::int64_t expected = 0;
    reader.read_frames(indices, [&](std::int64_t index, q3vl::RgbImage frame) {
      if (index != expected++ || frame.width <= 0 || frame.height <= 0 ||
          frame.width * frame.height > limits.max_frame_pixels ||
          frame.pixels.size() != static_cast<std::size_t>(frame.width * frame.height * 3)) {
        __builtin_trap();
      }
    });
  } catch (const q3vl::InvalidInput&) {
  } catch (const q3vl::Unsupported&) {
  }
  return 0;
}
