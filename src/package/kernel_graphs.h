#pragma once
// The kernel graphs (package/format.h) and their stamps. text.kernels.onnx and its .data: written by
// `q3vl build` beside text.onnx for int4 float32 packages at accuracy level 4, with
// text.kernels.json, a stamp holding the SHA-256 of the text.onnx it was made from and the size of
// its data file, so that a text.onnx rebuilt later (say at another precision) or a cut data file is
// never loaded as the kernel graph. vision.kernels.onnx likewise beside a quantized vision.onnx,
// with vision.kernels.json (the SHA-256 of that vision.onnx; it has no data file of its own).
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "package/package.h"

namespace q3vl {

inline constexpr const char* kKernelTextStamp = "text.kernels.json";
inline constexpr const char* kKernelVisionStamp = "vision.kernels.json";

// The stamp for the kernel graph in package folder `dir`: the SHA-256 of the text.onnx it was made
// from and the size of its data file.
nlohmann::json kernel_text_stamp(const std::filesystem::path& dir);
nlohmann::json kernel_vision_stamp(const std::filesystem::path& dir);

// Empty when the package's text.kernels.onnx can be loaded in place of text.onnx; otherwise why
// not ("" when the package simply has none). Never throws for a bad stamp.
std::optional<std::string> kernel_text_problem(const Package& package);
// The same for vision.kernels.onnx in place of vision.onnx.
std::optional<std::string> kernel_vision_problem(const Package& package);

struct VisionModelChoice {
  std::filesystem::path model;  // vision.kernels.onnx or vision.onnx
  bool kernels = false;
  std::string note;  // which encoder and why, or why the kernel graph was ignored; empty for a plain vision.onnx
};

// vision.kernels.onnx when asked, valid and `fast_int8` (kernels::int8_kernels_fast: elsewhere
// ONNX Runtime's MatMulNBits is faster); vision.onnx otherwise.
VisionModelChoice choose_vision_model(const Package& package, bool use_kernels, bool fast_int8);

}  // namespace q3vl
