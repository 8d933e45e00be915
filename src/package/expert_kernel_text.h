#pragma once
// text.experts.onnx (package/format.h): written by `q3vl build` beside text.onnx for MoE packages
// with int4 experts, with text.experts.json, a stamp holding the SHA-256 of the text.onnx it was
// made from, so that a text.onnx rebuilt later (say at another precision) is never paired with a
// stale expert graph.
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "package/package.h"

namespace q3vl {

inline constexpr const char* kExpertKernelStamp = "text.experts.json";

// The stamp for an expert graph made from `text_onnx`.
nlohmann::json expert_kernel_stamp(const std::filesystem::path& text_onnx);

// Empty when the package's text.experts.onnx can be loaded in place of text.onnx; otherwise why
// not ("" when the package simply has none). Never throws for a bad stamp.
std::optional<std::string> expert_kernel_text_problem(const Package& package);

}  // namespace q3vl
