#include "util/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "q3vl/error.h"

namespace q3vl {

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInput("cannot open " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

nlohmann::json read_json_file(const std::filesystem::path& path) {
  try {
    return nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw InvalidInput(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

AtomicFileWriter::AtomicFileWriter(const std::filesystem::path& path) : path_(path) {
  // O_EXCL under a name of our own: never truncates someone else's file, even a stale temporary.
  std::string stem = path.filename().string();
  stem.insert(stem.begin(), '.');
  stem += ".tmp-" + std::to_string(::getpid()) + "-";
  for (int attempt = 0; fd_ < 0; ++attempt) {
    temp_ = path.parent_path() / (stem + std::to_string(attempt));
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || attempt >= 100)) {
      throw Error("cannot create " + path.string() + ": " + std::strerror(errno));
    }
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(temp_.c_str());
}

void AtomicFileWriter::write(std::span<const std::uint8_t> bytes) {
  if (fd_ < 0) throw Error("write to " + path_.string() + " after it was closed");
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error("cannot write " + path_.string() + ": " + std::strerror(n < 0 ? errno : ENOSPC));
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
}

void AtomicFileWriter::write(const std::string& text) {
  write(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

void AtomicFileWriter::commit() {
  if (fd_ < 0) throw Error("commit of " + path_.string() + " after it was closed");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw Error("cannot write " + path_.string() + ": " + std::strerror(errno));
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    throw Error("cannot write " + path_.string() + ": " + std::strerror(errno));
  }
  committed_ = true;
}

void write_text_file(const std::filesystem::path& path, const std::string& text) {
  AtomicFileWriter file(path);
  file.write(text);
  file.commit();
}

std::uint64_t onnx_model_bytes(const std::filesystem::path& onnx) {
  std::uint64_t total = std::filesystem::file_size(onnx);
  const std::filesystem::path data = onnx.string() + ".data";
  if (std::filesystem::exists(data)) total += std::filesystem::file_size(data);
  return total;
}

void write_json_file(const std::filesystem::path& path, const nlohmann::json& value) {
  write_text_file(path, value.dump(2) + "\n");
}

}  // namespace q3vl
