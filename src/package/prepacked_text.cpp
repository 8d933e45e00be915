#include "package/prepacked_text.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "q3vl/error.h"
#include "util/json_fields.h"
#include "package/kernel_graphs.h"
#include "package/format.h"
#include "util/sha256.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

// The first processor's "model name" and "flags" lines: ONNX Runtime's kernels pick their packed
// layout from the instruction sets they find (AVX2, AVX-512, VNNI...).
nlohmann::json cpu_identity() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  std::string model;
  std::string flags;
  while (std::getline(cpuinfo, line) && (model.empty() || flags.empty())) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "model name" && model.empty()) model = value;
    if (key == "flags" && flags.empty()) flags = value;
  }
  return {{"model", model}, {"flags_sha256", to_hex(Sha256().update(flags).finish())}};
}

// 16 blocks of 64 KB spread over the file (the whole file when smaller): cheap at every load, and
// different for a package rebuilt from other weights of the same shapes.
std::string sampled_digest(const fs::path& file, std::uint64_t bytes) {
  constexpr std::uint64_t kBlock = 64 << 10;
  constexpr int kBlocks = 16;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InvalidInput(file.string() + ": cannot read it");
  Sha256 sha;
  std::vector<std::uint8_t> buffer(kBlock);
  for (int i = 0; i < kBlocks; ++i) {
    const std::uint64_t offset = bytes <= kBlock ? 0 : (bytes - kBlock) / (kBlocks - 1) * i;
    const std::uint64_t length = std::min(kBlock, bytes - offset);
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(reinterpret_cast<char*>(buffer.data()), static_cast<std::streamsize>(length));
    if (in.gcount() != static_cast<std::streamsize>(length)) throw InvalidInput(file.string() + ": shorter than it was");
    sha.update(std::span<const std::uint8_t>(buffer.data(), length));
    if (bytes <= kBlock) break;
  }
  return to_hex(sha.finish());
}

nlohmann::json data_file_identity(const fs::path& file) {
  std::error_code error;
  const std::uint64_t bytes = fs::file_size(file, error);
  if (error) return nullptr;  // text.onnx may hold its weights inline
  const auto written = fs::last_write_time(file, error);
  const auto nanoseconds =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::file_clock::to_sys(written).time_since_epoch()).count();
  return {{"bytes", bytes}, {"modified_ns", static_cast<std::int64_t>(nanoseconds)}, {"sampled_sha256", sampled_digest(file, bytes)}};
}

}  // namespace

nlohmann::json prepacked_text_inputs(const Package& package, const std::string& onnxruntime_version) {
  const fs::path text = package.text_model();
  const char* experts = std::getenv("ORT_USE_MLAS_Q4_GEMM_MOE");
  return {{"text_onnx_sha256", to_hex(Sha256().update_file(text).finish())},
          {"text_onnx_data", data_file_identity(fs::path(text.string() + ".data"))},
          {"onnxruntime", onnxruntime_version},
          {"cpu", cpu_identity()},
          {"ORT_USE_MLAS_Q4_GEMM_MOE", experts != nullptr ? experts : ""}};
}

namespace {

// 0 when ONNX Runtime kept every initializer inside the .onnx file (a very small model).
std::uint64_t prepacked_data_bytes(const fs::path& dir) {
  std::error_code error;
  const std::uint64_t bytes = fs::file_size(dir / kPrepackedTextData, error);
  return error ? 0 : bytes;
}

}  // namespace

nlohmann::json prepacked_text_stamp(const Package& package, const std::string& onnxruntime_version, const fs::path& dir) {
  return {{"format", "q3vl-prepacked-text/1"},
          {"made_from", prepacked_text_inputs(package, onnxruntime_version)},
          {"prepacked_data_bytes", prepacked_data_bytes(dir)}};
}

namespace {

TextModelChoice choose_prepacked(const Package& package, const std::string& onnxruntime_version) {
  const fs::path dir = package.dir();
  TextModelChoice choice{package.text_model(), false, false, ""};
  if (!fs::exists(dir / kPrepackedTextStamp)) return choice;
  const auto ignored = [&](const std::string& why) {
    choice.note = std::string(kPrepackedTextModel) + " ignored: " + why + " (run `q3vl prepack` again)";
    return choice;
  };
  try {
    const nlohmann::json stamp = read_json_bounded(dir / kPrepackedTextStamp);
    if (!stamp.is_object() || stamp.value("format", "") != "q3vl-prepacked-text/1" || !stamp.contains("made_from")) {
      return ignored(std::string(kPrepackedTextStamp) + " is not a stamp q3vl wrote");
    }
    const nlohmann::json& made_from = stamp["made_from"];
    const nlohmann::json now = prepacked_text_inputs(package, onnxruntime_version);
    if (made_from.value("onnxruntime", "") != now["onnxruntime"]) {
      return ignored("made by ONNX Runtime " + made_from.value("onnxruntime", "?") + ", this is " + onnxruntime_version);
    }
    if (made_from.value("cpu", nlohmann::json()) != now["cpu"]) return ignored("made on another CPU");
    if (made_from.value("ORT_USE_MLAS_Q4_GEMM_MOE", "") != now["ORT_USE_MLAS_Q4_GEMM_MOE"]) {
      return ignored("made with another ORT_USE_MLAS_Q4_GEMM_MOE");
    }
    if (made_from != now) return ignored("text.onnx changed since");
    if (!fs::exists(dir / kPrepackedTextModel) || !stamp.contains("prepacked_data_bytes") ||
        stamp["prepacked_data_bytes"] != prepacked_data_bytes(dir)) {
      return ignored(std::string(kPrepackedTextModel) + " or its data file is missing or incomplete");
    }
  } catch (const Error& e) {
    return ignored(e.what());
  } catch (const nlohmann::json::exception& e) {
    return ignored(std::string(kPrepackedTextStamp) + ": " + e.what());
  }
  choice.model = dir / kPrepackedTextModel;
  choice.prepacked = true;
  choice.note = std::string("text decoder: ") + kPrepackedTextModel + " (weights prepacked for this CPU)";
  return choice;
}

}  // namespace

TextModelChoice choose_text_model(const Package& package, const std::string& onnxruntime_version, bool use_prepacked,
                                  bool use_kernels) {
  // q3vl's kernels first: they need no prepacking at all, so the prepacked decoder is not looked at.
  std::string kernels_note;
  if (use_kernels) {
    const std::optional<std::string> problem = kernel_text_problem(package);
    if (!problem) {
      return {package.dir() / package::kKernelTextModel, false, true,
              std::string("text decoder: ") + package::kKernelTextModel + " (q3vl's int4 kernels)"};
    }
    if (!problem->empty()) kernels_note = std::string(package::kKernelTextModel) + " ignored: " + *problem + " (build the package again)";
  }
  TextModelChoice choice = use_prepacked ? choose_prepacked(package, onnxruntime_version) : TextModelChoice{package.text_model(), false, false, ""};
  if (!kernels_note.empty()) choice.note = kernels_note + (choice.note.empty() ? "" : "; " + choice.note);
  return choice;
}

}  // namespace q3vl
