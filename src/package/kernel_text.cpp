#include "package/kernel_text.h"

#include "package/format.h"
#include "q3vl/error.h"
#include "util/json_fields.h"
#include "util/sha256.h"

namespace q3vl {

namespace fs = std::filesystem;

namespace {
constexpr const char* kStampFormat = "q3vl-kernel-text/2";
}

nlohmann::json kernel_text_stamp(const fs::path& dir) {
  std::error_code ec;
  const std::uintmax_t data_bytes = fs::file_size(dir / package::kKernelTextData, ec);
  return {{"format", kStampFormat},
          {"text_onnx_sha256", to_hex(Sha256().update_file(dir / package::kTextModel).finish())},
          {"data_bytes", ec ? -1 : static_cast<std::int64_t>(data_bytes)}};
}

std::optional<std::string> kernel_text_problem(const Package& package) {
  const fs::path dir = package.dir();
  if (!fs::exists(dir / package::kKernelTextModel)) return std::string();
  try {
    const nlohmann::json stamp = read_json_bounded(dir / kKernelTextStamp);
    if (!stamp.is_object() || stamp.value("format", "") != kStampFormat) return std::string(kKernelTextStamp) + " is not a stamp q3vl wrote";
    const nlohmann::json now = kernel_text_stamp(dir);
    if (stamp.value("text_onnx_sha256", "") != now["text_onnx_sha256"]) return std::string(package::kTextModel) + " changed since it was written";
    if (stamp != now) return std::string(package::kKernelTextData) + " is missing or not the size it was written with";
  } catch (const Error& e) {
    return std::string(e.what());
  } catch (const nlohmann::json::exception& e) {
    return std::string(kKernelTextStamp) + ": " + e.what();
  }
  return std::nullopt;
}

}  // namespace q3vl
