#include "util/files.h"

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

void write_text_file(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path temp = path.string() + ".partial";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw Error("cannot write " + temp.string() + " (disk full?)");
  }
  std::filesystem::rename(temp, path);
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
