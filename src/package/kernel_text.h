#pragma once
// text.kernels.onnx and its .data (package/format.h): written by `q3vl build` beside text.onnx for
// int4 float32 packages at accuracy level 4, with text.kernels.json, a stamp holding the SHA-256 of
// the text.onnx it was made from and the size of its data file, so that a text.onnx rebuilt later
// (say at another precision) or a cut data file is never loaded as the kernel graph.
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "package/package.h"

namespace q3vl {

inline constexpr const char* kKernelTextStamp = "text.kernels.json";

// The stamp for the kernel graph in package folder `dir`: the SHA-256 of the text.onnx it was made
// from and the size of its data file.
nlohmann::json kernel_text_stamp(const std::filesystem::path& dir);

// Empty when the package's text.kernels.onnx can be loaded in place of text.onnx; otherwise why
// not ("" when the package simply has none). Never throws for a bad stamp.
std::optional<std::string> kernel_text_problem(const Package& package);

}  // namespace q3vl
