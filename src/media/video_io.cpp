#include "media/video_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <limits>
#include <new>

#include "q3vl/error.h"

namespace q3vl {
namespace {

// 64 KiB reads: large enough that the callbacks cost nothing next to demuxing.
constexpr int kIoBufferBytes = 1 << 16;

void check_size(std::int64_t size, std::int64_t max_bytes, const std::string& label) {
  if (size <= 0) throw InvalidInput(label + ": the video file is empty");
  if (size > max_bytes) {
    throw InvalidInput(label + ": the video file has " + std::to_string(size) + " bytes, more than the limit of " +
                       std::to_string(max_bytes));
  }
}

class MemoryBytes final : public VideoBytes {
 public:
  explicit MemoryBytes(std::span<const std::uint8_t> bytes)
      : VideoBytes(static_cast<std::int64_t>(bytes.size())), bytes_(bytes) {}

 private:
  int read_at(std::int64_t offset, std::uint8_t* out, int size) override {
    const std::int64_t available = static_cast<std::int64_t>(bytes_.size()) - offset;
    const int count = static_cast<int>(std::min<std::int64_t>(size, std::max<std::int64_t>(available, 0)));
    if (count > 0) std::memcpy(out, bytes_.data() + offset, static_cast<std::size_t>(count));
    return count;
  }

  std::span<const std::uint8_t> bytes_;
};

class FileBytes final : public VideoBytes {
 public:
  FileBytes(int fd, std::int64_t size) : VideoBytes(size), fd_(fd) {}
  ~FileBytes() override { ::close(fd_); }

 private:
  int read_at(std::int64_t offset, std::uint8_t* out, int size) override {
    for (;;) {
      const ssize_t count = ::pread(fd_, out, static_cast<std::size_t>(size), static_cast<off_t>(offset));
      if (count >= 0) return static_cast<int>(count);
      if (errno != EINTR) return AVERROR(errno);
    }
  }

  int fd_;
};

}  // namespace

std::unique_ptr<VideoBytes> VideoBytes::open_file(const std::filesystem::path& path, std::int64_t max_bytes) {
  const std::string label = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    throw InvalidInput(label + ": " + (error == ENOENT ? std::string("no such file") : std::strerror(error)));
  }
  struct stat status {};
  if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
    ::close(fd);
    throw InvalidInput(label + ": not a regular file");
  }
  std::unique_ptr<VideoBytes> bytes = std::make_unique<FileBytes>(fd, static_cast<std::int64_t>(status.st_size));
  check_size(bytes->size(), max_bytes, label);
  return bytes;
}

std::unique_ptr<VideoBytes> VideoBytes::wrap_memory(std::span<const std::uint8_t> bytes, const std::string& label,
                                                    std::int64_t max_bytes) {
  check_size(static_cast<std::int64_t>(bytes.size()), max_bytes, label);
  return std::make_unique<MemoryBytes>(bytes);
}

libav::IoContext VideoBytes::make_io_context() {
  position_ = 0;
  auto* buffer = static_cast<unsigned char*>(av_malloc(kIoBufferBytes));
  if (buffer == nullptr) throw std::bad_alloc();
  libav::IoContext context(
      avio_alloc_context(buffer, kIoBufferBytes, 0, this, &VideoBytes::read_callback, nullptr, &VideoBytes::seek_callback));
  if (!context) {
    av_free(buffer);
    throw std::bad_alloc();
  }
  return context;
}

int VideoBytes::read_callback(void* opaque, std::uint8_t* out, int size) {
  auto* self = static_cast<VideoBytes*>(opaque);
  const int count = self->read_at(self->position_, out, size);
  if (count < 0) return count;
  if (count == 0) return AVERROR_EOF;
  self->position_ += count;
  return count;
}

std::int64_t VideoBytes::seek_callback(void* opaque, std::int64_t offset, int whence) {
  auto* self = static_cast<VideoBytes*>(opaque);
  whence &= ~AVSEEK_FORCE;
  if (whence == AVSEEK_SIZE) return self->size_;
  std::int64_t base = 0;
  if (whence == SEEK_CUR) {
    base = self->position_;
  } else if (whence == SEEK_END) {
    base = self->size_;
  } else if (whence != SEEK_SET) {
    return AVERROR(EINVAL);
  }
  // Demuxers compute offsets from file fields: refuse any that overflow or fall before the start.
  if ((offset > 0 && base > std::numeric_limits<std::int64_t>::max() - offset) || base + offset < 0) {
    return AVERROR(EINVAL);
  }
  self->position_ = base + offset;
  return self->position_;
}

}  // namespace q3vl
