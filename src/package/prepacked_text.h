#pragma once
// A package's text decoder with the weights ONNX Runtime prepacked for one CPU, written by
// `q3vl prepack`: text.prepacked.onnx, its .data (every initializer and the packed copies, which
// ONNX Runtime memory-maps at load instead of keeping a second, packed copy of every quantized
// weight on the heap) and text.prepacked.json, a stamp naming the text.onnx, ONNX Runtime and
// CPU it was made from. The runtime uses it only when all three still match; otherwise text.onnx,
// and onnxruntime-genai always reads text.onnx (genai_config.json does not name the prepacked one).
#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "package/package.h"

namespace q3vl {

inline constexpr const char* kPrepackedTextModel = "text.prepacked.onnx";
inline constexpr const char* kPrepackedTextData = "text.prepacked.onnx.data";
inline constexpr const char* kPrepackedTextStamp = "text.prepacked.json";

// What the prepacked decoder depends on, as of now: text.onnx's graph (SHA-256), its data file
// (size, modification time and a digest of samples spread over it: a rebuilt package with other
// weights differs even when the graphs are byte-identical), the ONNX Runtime version, this CPU
// (model name and instruction-set flags) and the packing switch for int4 experts.
nlohmann::json prepacked_text_inputs(const Package& package, const std::string& onnxruntime_version);

// The stamp `q3vl prepack` writes once text.prepacked.onnx and its data exist in `dir`.
nlohmann::json prepacked_text_stamp(const Package& package, const std::string& onnxruntime_version,
                                    const std::filesystem::path& dir);

struct TextModelChoice {
  std::filesystem::path model;  // what to load: text.kernels.onnx, text.prepacked.onnx or text.onnx
  bool prepacked = false;
  bool kernels = false;  // text.kernels.onnx (package/kernel_graphs.h)
  std::string note;  // which decoder and why, or why one was ignored; empty when the package has only text.onnx
};

// text.kernels.onnx when asked and valid; else text.prepacked.onnx when asked and its stamp matches
// prepacked_text_inputs() and its data file is whole; text.onnx otherwise, with the reason in `note`.
// Never throws for a bad stamp (it is ignored).
TextModelChoice choose_text_model(const Package& package, const std::string& onnxruntime_version, bool use_prepacked = true,
                                  bool use_kernels = true);

}  // namespace q3vl
