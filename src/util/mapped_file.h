#pragma once
// Read-only memory map of a whole file (RAII). Checkpoints are read through this so a 9 GB
// model is never loaded into memory at once: the kernel pages in what is touched.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>

namespace q3vl {

class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
  // Drops the pages under `range` (a part of bytes()) from this process's memory; they are read
  // from the file again if touched. Streaming exports call this after each tensor, so resident
  // memory stays near one tensor instead of growing to the whole checkpoint.
  void release(std::span<const std::uint8_t> range) const;
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void release() noexcept;

  std::filesystem::path path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace q3vl
