#pragma once
// Whole small files (configs, manifests, templates): read, parse and write with errors that name
// the file. Writes go through a temporary file and a rename, so a reader never sees half a file.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

namespace q3vl {

std::string read_text_file(const std::filesystem::path& path);
nlohmann::json read_json_file(const std::filesystem::path& path);
void write_text_file(const std::filesystem::path& path, const std::string& text);
// Bytes of an ONNX model on disk: the .onnx file plus its external data file, if any.
std::uint64_t onnx_model_bytes(const std::filesystem::path& onnx);

void write_json_file(const std::filesystem::path& path, const nlohmann::json& value);  // 2-space indent

// A file written under a fresh temporary name beside `path` and renamed onto `path` by commit():
// a crash, a full disk or an exception never leaves a partial file under the final name. Every
// failed write, close or rename throws q3vl::Error naming the file and the system's reason.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::filesystem::path& path);
  ~AtomicFileWriter();  // without commit(): the temporary file is removed
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(std::span<const std::uint8_t> bytes);
  void write(const std::string& text);
  void commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace q3vl
