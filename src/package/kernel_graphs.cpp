#include "package/kernel_graphs.h"

#include <functional>

#include "package/format.h"
#include "q3vl/error.h"
#include "util/json_fields.h"
#include "util/sha256.h"

namespace q3vl {

namespace fs = std::filesystem;

namespace {

constexpr const char* kTextStampFormat = "q3vl-kernel-text/2";
constexpr const char* kVisionStampFormat = "q3vl-kernel-vision/1";

std::string sha256_of(const fs::path& file) { return to_hex(Sha256().update_file(file).finish()); }

// Why the kernel graph `model` cannot stand in for `made_from`, whose digest its stamp holds under
// `digest_key`, when the stamp should now read `now()`; "" when there is no kernel graph; nullopt
// when it can.
std::optional<std::string> stamp_problem(const fs::path& dir, const char* model, const char* stamp_file, const char* made_from,
                                         const char* digest_key, const std::function<nlohmann::json()>& now) {
  if (!fs::exists(dir / model)) return std::string();
  try {
    const nlohmann::json stamp = read_json_bounded(dir / stamp_file);
    const nlohmann::json expected = now();
    if (!stamp.is_object() || stamp.value("format", "") != expected["format"]) return std::string(stamp_file) + " is not a stamp q3vl wrote";
    if (stamp.value(digest_key, "") != expected[digest_key]) return std::string(made_from) + " changed since it was written";
    if (stamp != expected) return std::string(model) + ".data is missing or not the size it was written with";
  } catch (const Error& e) {
    return std::string(e.what());
  } catch (const nlohmann::json::exception& e) {
    return std::string(stamp_file) + ": " + e.what();
  }
  return std::nullopt;
}

}  // namespace

nlohmann::json kernel_text_stamp(const fs::path& dir) {
  std::error_code ec;
  const std::uintmax_t data_bytes = fs::file_size(dir / package::kKernelTextData, ec);
  return {{"format", kTextStampFormat},
          {"text_onnx_sha256", sha256_of(dir / package::kTextModel)},
          {"data_bytes", ec ? -1 : static_cast<std::int64_t>(data_bytes)}};
}

nlohmann::json kernel_vision_stamp(const fs::path& dir) {
  return {{"format", kVisionStampFormat}, {"vision_onnx_sha256", sha256_of(dir / package::kVisionModel)}};
}

std::optional<std::string> kernel_text_problem(const Package& package) {
  const fs::path dir = package.dir();
  return stamp_problem(dir, package::kKernelTextModel, kKernelTextStamp, package::kTextModel, "text_onnx_sha256",
                       [&] { return kernel_text_stamp(dir); });
}

std::optional<std::string> kernel_vision_problem(const Package& package) {
  const fs::path dir = package.dir();
  return stamp_problem(dir, package::kKernelVisionModel, kKernelVisionStamp, package::kVisionModel, "vision_onnx_sha256",
                       [&] { return kernel_vision_stamp(dir); });
}

VisionModelChoice choose_vision_model(const Package& package, bool use_kernels, bool fast_int8) {
  VisionModelChoice choice{package.vision_model(), false, ""};
  if (!use_kernels) return choice;
  const std::optional<std::string> problem = kernel_vision_problem(package);
  if (!problem) {
    if (!fast_int8) {
      choice.note = std::string("vision encoder: ") + package::kVisionModel + " (this CPU lacks AVX2, which " +
                    package::kKernelVisionModel + "'s kernels need to be faster)";
      return choice;
    }
    return {package.dir() / package::kKernelVisionModel, true, std::string("vision encoder: ") + package::kKernelVisionModel + " (q3vl's int8 kernels)"};
  }
  if (!problem->empty()) choice.note = std::string(package::kKernelVisionModel) + " ignored: " + *problem + " (build the package again)";
  return choice;
}

}  // namespace q3vl
