#include "package/kernel_text.h"

#include "package/format.h"
#include "q3vl/error.h"
#include "util/json_fields.h"
#include "util/sha256.h"

namespace q3vl {

namespace fs = std::filesystem;

namespace {
constexpr const char* kStampFormat = "q3vl-kernel-text/1";
}

nlohmann::json kernel_text_stamp(const fs::path& text_onnx) {
  return {{"format", kStampFormat}, {"text_onnx_sha256", to_hex(Sha256().update_file(text_onnx).finish())}};
}

std::optional<std::string> kernel_text_problem(const Package& package) {
  const fs::path dir = package.dir();
  if (!fs::exists(dir / package::kKernelTextModel)) return std::string();
  try {
    const nlohmann::json stamp = read_json_bounded(dir / kKernelTextStamp);
    if (!stamp.is_object() || stamp.value("format", "") != kStampFormat) return std::string(kKernelTextStamp) + " is not a stamp q3vl wrote";
    if (stamp != kernel_text_stamp(package.text_model())) return std::string(package::kTextModel) + " changed since it was written";
  } catch (const Error& e) {
    return std::string(e.what());
  } catch (const nlohmann::json::exception& e) {
    return std::string(kKernelTextStamp) + ": " + e.what();
  }
  return std::nullopt;
}

}  // namespace q3vl
