#pragma once
// The bytes the video reader demuxes: a file (read with pread, never mapped, so a long video does
// not count against resident memory) or a span in memory, each behind an AVIOContext with read and
// seek callbacks. libavformat then never opens anything by name: no protocol ("http:", "pipe:",
// "concat:") is ever interpreted from a path.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "media/libav_handles.h"

namespace q3vl {

class VideoBytes {
 public:
  // Throws InvalidInput naming the file when it is missing, not a regular file, unreadable, empty,
  // or larger than `max_bytes`.
  static std::unique_ptr<VideoBytes> open_file(const std::filesystem::path& path, std::int64_t max_bytes);
  // The same checks for bytes in memory; `label` names them.
  static std::unique_ptr<VideoBytes> wrap_memory(std::span<const std::uint8_t> bytes, const std::string& label,
                                                 std::int64_t max_bytes);
  virtual ~VideoBytes() = default;
  VideoBytes(const VideoBytes&) = delete;
  VideoBytes& operator=(const VideoBytes&) = delete;

  std::int64_t size() const { return size_; }
  // A fresh reading context positioned at the start, for one demuxer. One at a time: the contexts
  // share this object's read position, so making a new one rewinds (and retires the old one).
  libav::IoContext make_io_context();

 protected:
  explicit VideoBytes(std::int64_t size) : size_(size) {}
  // Copies up to `size` bytes at `offset` into `out`; returns how many (0 at the end), or a
  // negative AVERROR.
  virtual int read_at(std::int64_t offset, std::uint8_t* out, int size) = 0;

 private:
  static int read_callback(void* opaque, std::uint8_t* out, int size);
  static std::int64_t seek_callback(void* opaque, std::int64_t offset, int whence);

  std::int64_t size_;
  std::int64_t position_ = 0;
};

}  // namespace q3vl
