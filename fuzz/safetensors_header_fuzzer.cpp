// libFuzzer target for the safetensors header parser: any byte string must either parse or be
// rejected with q3vl::InvalidInput; anything else (a crash, another exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "model/safetensors.h"
#include "q3vl/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const q3vl::SafetensorsHeader header = q3vl::parse_safetensors_header({data, size}, "fuzz input");
    // A header that parses must describe only bytes that exist.
    for (const q3vl::TensorInfo& tensor : header.tensors) {
      if (header.data_start + tensor.end > size) __builtin_trap();
    }
  } catch (const q3vl::InvalidInput&) {
  }
  return 0;
}
