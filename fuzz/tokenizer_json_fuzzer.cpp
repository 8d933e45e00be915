// libFuzzer target for tokenizer.json: any byte string must load into a tokenizer that encodes and
// decodes without crashing, or be rejected with a q3vl::Error; another exception, a crash or a
// sanitizer report is a bug. The loader reads a path, so each input goes through a scratch file.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "q3vl/error.h"
#include "text/tokenizer.h"

namespace {

const std::filesystem::path& scratch_file() {
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("q3vl-fuzz-tokenizer-" + std::to_string(::getpid()) + ".json");
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  {
    std::ofstream out(scratch_file(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const q3vl::Tokenizer tokenizer = q3vl::Tokenizer::load(scratch_file());
    // Text taken from the input's tail exercises the regex, normalization and BPE of what loaded.
    const std::string_view tail(reinterpret_cast<const char*>(data) + size / 2, size - size / 2);
    for (const std::string_view text : {std::string_view("Hello, world! 123 <|im_end|>\n\t  x"), tail}) {
      try {
        const auto ids = tokenizer.encode(text);
        (void)tokenizer.decode(ids);
        (void)tokenizer.decode(ids, /*skip_special_tokens=*/true);
      } catch (const q3vl::Error&) {
      }
    }
    const std::int64_t some_ids[] = {-1, 0, 1, 255, 256, tokenizer.vocab_size(), 1 << 30};
    (void)tokenizer.decode(some_ids);
  } catch (const q3vl::Error&) {
  }
  return 0;
}
