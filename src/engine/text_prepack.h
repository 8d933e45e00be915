#pragma once
// `q3vl prepack`: writes into a package the text decoder with the weights ONNX Runtime prepacks
// for this CPU (package/prepacked_text.h), or removes it. ONNX Runtime 1.29 still runs its packing
// code at every load (it names each packed blob by a hash of the packing's result), so the saving
// is the heap: the packed weights are read from the memory-mapped file (clean, shared, evictable
// pages) instead of a second copy in anonymous memory, and load skips the page zeroing.
#include <cstdint>
#include <filesystem>
#include <string>

namespace q3vl {

struct PrepackReport {
  std::filesystem::path model;     // text.prepacked.onnx in the package
  std::uint64_t data_bytes = 0;    // its data file (every initializer and the packed copies)
  std::uint64_t source_bytes = 0;  // text.onnx and its data
  double seconds = 0;
};

// Throws InvalidInput if `package_dir` is not a complete q3vl package written by q3vl (it has to
// carry q3vl's folder marker) or its decoder is float (ONNX Runtime prepacks no float weights here:
// q3vl loads fp32/fp16 decoders without packing), Error if ONNX Runtime fails. The package stays
// as it was until the new files are complete; they then replace any earlier prepacked decoder.
PrepackReport prepack_text_model(const std::filesystem::path& package_dir, int threads = 0);

// Removes text.prepacked.onnx, its data and its stamp (the stamp first); returns how many of the
// three existed. The package must carry q3vl's folder marker.
int remove_prepacked_text(const std::filesystem::path& package_dir);

}  // namespace q3vl
