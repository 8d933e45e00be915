// libFuzzer target for a package's manifest (q3vl_package.json): any byte string in an otherwise
// complete package folder must open into a consistent Package or be rejected with a q3vl::Error;
// another exception, a crash or a sanitizer report is a bug. The genai_config.json beside it gets
// the same input on every other run.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "q3vl/error.h"
#include "package/package.h"

namespace {

namespace fs = std::filesystem;

void write_file(const fs::path& path, const char* bytes, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes, static_cast<std::streamsize>(size));
}

// A package folder whose model and tokenizer files exist (their contents are not read on open).
const fs::path& scratch_package() {
  static const fs::path dir = [] {
    const fs::path d = fs::temp_directory_path() / ("q3vl-fuzz-package-" + std::to_string(::getpid()));
    fs::create_directories(d);
    for (const char* name : {"vision.onnx", "embedding.onnx", "text.onnx", "tokenizer.json"}) write_file(d / name, "", 0);
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fs::path& dir = scratch_package();
  const char* bytes = reinterpret_cast<const char*>(data);
  const std::string valid_genai = R"({"search": {"max_length": 4096}})";
  const bool fuzz_genai = size > 0 && data[0] % 2 == 1;
  write_file(dir / "q3vl_package.json", bytes, size);
  if (fuzz_genai) {
    write_file(dir / "genai_config.json", bytes, size);
  } else {
    write_file(dir / "genai_config.json", valid_genai.data(), valid_genai.size());
  }
  try {
    const q3vl::Package package = q3vl::Package::open(dir);
    if (package.max_length() <= 0 || package.config().text.hidden_size <= 0) __builtin_trap();
  } catch (const q3vl::Error&) {
  }
  return 0;
}
