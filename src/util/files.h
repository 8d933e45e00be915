#pragma once
// Whole small files (configs, manifests, templates): read, parse and write with errors that name
// the file. Writes go through a temporary file and a rename, so a reader never sees half a file.
#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace q3vl {

std::string read_text_file(const std::filesystem::path& path);
nlohmann::json read_json_file(const std::filesystem::path& path);
void write_text_file(const std::filesystem::path& path, const std::string& text);
// Bytes of an ONNX model on disk: the .onnx file plus its external data file, if any.
std::uint64_t onnx_model_bytes(const std::filesystem::path& onnx);

void write_json_file(const std::filesystem::path& path, const nlohmann::json& value);  // 2-space indent

}  // namespace q3vl
