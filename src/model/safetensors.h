#pragma once
// Safetensors files: header parsing with full validation, memory-mapped tensor access, and a
// streaming writer. Format: u64 little-endian header length N, N bytes of JSON, then the data.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "util/mapped_file.h"

namespace q3vl {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;  // byte offsets relative to the start of the data section
  std::uint64_t end = 0;

  std::int64_t element_count() const;
};

struct SafetensorsHeader {
  std::uint64_t data_start = 0;  // absolute file offset of the data section
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};

// Largest header accepted; real checkpoints have headers of a few hundred KB.
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

// Parses and checks the header of a safetensors file whose whole content is `file`. Every tensor
// must have a known dtype, a non-negative shape and a byte range inside the data section that
// matches its size; ranges must not overlap. Throws InvalidInput naming `label` and the tensor.
SafetensorsHeader parse_safetensors_header(std::span<const std::uint8_t> file, const std::string& label);

// A read-only view of one tensor's bytes inside a mapped file.
struct TensorView {
  const TensorInfo* info = nullptr;
  std::span<const std::uint8_t> bytes;

  const std::string& name() const { return info->name; }
  DType dtype() const { return info->dtype; }
  const std::vector<std::int64_t>& shape() const { return info->shape; }
  std::int64_t element_count() const { return info->element_count(); }
};

// Converts elements [first, first + out.size()) of a BF16/F16/F32 tensor to float32.
void read_as_float(const TensorView& tensor, std::size_t first, std::span<float> out);
std::vector<float> read_as_float(const TensorView& tensor);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* find(const std::string& name) const;
  TensorView view(const TensorInfo& info) const;
  void release(const TensorView& tensor) const { file_.release(tensor.bytes); }

 private:
  MappedFile file_;
  SafetensorsHeader header_;
  std::map<std::string, std::size_t> index_;
};

// Writes a safetensors file tensor by tensor, without holding the data: the header is written
// first from the declared tensors, then each tensor's bytes are appended in declaration order.
// The file appears under its final name only after finish() succeeds.
class SafetensorsWriter {
 public:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
  };

  SafetensorsWriter(const std::filesystem::path& path, std::vector<Entry> entries,
                    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  const std::vector<Entry>& entries() const { return entries_; }
  // The next tensor to write (in declaration order), or nullptr when all are written.
  const Entry* next() const { return next_ < entries_.size() ? &entries_[next_] : nullptr; }
  // Appends bytes of the current tensor; a tensor may be written in several calls.
  void write(std::span<const std::uint8_t> bytes);
  void finish();

 private:
  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  std::vector<Entry> entries_;
  std::vector<std::uint64_t> sizes_;
  std::ofstream out_;
  std::size_t next_ = 0;
  std::uint64_t written_in_current_ = 0;
  bool finished_ = false;
};

}  // namespace q3vl
