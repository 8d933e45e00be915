#include "engine/text_prepack.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include <onnxruntime_cxx_api.h>

#include "engine/text_models.h"
#include "math/rope_index.h"
#include "ort/onnx_session.h"
#include "package/package.h"
#include "package/prepacked_text.h"
#include "q3vl/error.h"
#include "util/files.h"
#include "util/output_dir.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

// Files are added to a package folder only when q3vl's marker says it wrote it.
OutputDirOptions package_folder() {
  return OutputDirOptions{.kind = "package", .option = "--model", .replace = false, .force_option = "", .inputs = {}};
}

// Logits of a fixed probe: a 7-position prompt, then two single steps on its KV cache; embeddings
// (the DeepStack slots too) from a fixed sequence in [-1, 1), text positions (t = h = w).
std::vector<float> probe_logits(const DecoderModel& decoder, const ModelConfig& config) {
  const auto width = static_cast<std::int64_t>(1 + config.vision.deepstack_visual_indexes.size()) * config.text.hidden_size;
  std::uint32_t state = 20261204;
  const auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) * (2.0f / 16777216.0f) - 1.0f;
  };
  KvCache cache = decoder.new_cache(16);
  std::vector<float> logits;
  std::int64_t position = 0;
  for (const std::int64_t tokens : {7, 1, 1}) {
    std::vector<float> embeddings(static_cast<std::size_t>(tokens * width));
    for (float& value : embeddings) value = next();
    const DecoderOutput out = decoder.forward(cache, embeddings, text_position_ids(position, position + tokens));
    position += tokens;
    logits.insert(logits.end(), out.logits.begin(), out.logits.end());
  }
  return logits;
}

// ONNX Runtime runs the same kernels on the same packed layout either way, so the logits must be
// equal bit for bit; anything else means its file-backed packing went wrong for this model.
void check_same_logits(const std::vector<float>& expected, const std::vector<float>& actual, const fs::path& package_dir) {
  if (expected.size() == actual.size() && std::memcmp(expected.data(), actual.data(), expected.size() * sizeof(float)) == 0) return;
  double largest = 0;
  for (std::size_t i = 0; i < std::min(expected.size(), actual.size()); ++i) {
    largest = std::max(largest, std::abs(static_cast<double>(expected[i]) - actual[i]));
  }
  throw Error(package_dir.string() + ": the decoder ONNX Runtime saved with its prepacked weights does not reproduce text.onnx " +
              "on this model (probe logits differ by up to " + std::to_string(largest) +
              "): nothing was written. ONNX Runtime 1.29 gets some shapes wrong here (e.g. make-tiny's tiny preset)");
}

}  // namespace

PrepackReport prepack_text_model(const fs::path& package_dir, int threads) {
  const auto start = std::chrono::steady_clock::now();
  const Package package = Package::open(package_dir);
  if (package.float_decoder()) {
    throw InvalidInput(package_dir.string() + ": its decoder is float (fp32/fp16): q3vl loads those without packing, "
                       "so there is nothing to prepack (int8 and int4 packages have packed weights)");
  }
  if (package.config().text.moe) {
    throw InvalidInput(package_dir.string() + ": a mixture-of-experts decoder: ONNX Runtime 1.29's QMoE crashes when its " +
                       "packed experts come from the file, so q3vl does not prepack MoE packages");
  }
  OutputDir out(package_dir, package_folder());
  out.check(WriteMode::Update);
  const fs::path& stage = out.begin(WriteMode::Update);
  OnnxEnvironment environment(threads);
  // One decoder at a time: a large model's two copies would not fit beside each other.
  std::vector<float> expected;
  {
    SessionOptions writing;
    writing.save_prepacked_model = stage / kPrepackedTextModel;
    const DecoderModel original(environment, package.text_model(), package.config(), writing);
    expected = probe_logits(original, package.config());
  }
  {
    const DecoderModel written(environment, stage / kPrepackedTextModel, package.config());
    check_model_interface(package, PackagePart::Text, written.session().interface());
    check_same_logits(expected, probe_logits(written, package.config()), package_dir);
  }
  const nlohmann::json stamp = prepacked_text_stamp(package, Ort::GetVersionString(), stage);
  write_json_file(stage / kPrepackedTextStamp, stamp);
  PrepackReport report;
  report.data_bytes = stamp["prepacked_data_bytes"].get<std::uint64_t>();
  out.merge_into(kPrepackedTextStamp);
  report.model = out.path() / kPrepackedTextModel;
  report.source_bytes = onnx_model_bytes(package.text_model());
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

int remove_prepacked_text(const fs::path& package_dir) {
  const OutputDir out(package_dir, package_folder());
  out.check(WriteMode::Update);
  int removed = 0;
  for (const char* name : {kPrepackedTextStamp, kPrepackedTextModel, kPrepackedTextData}) {
    std::error_code error;
    const fs::path file = out.path() / name;
    if (!fs::is_regular_file(fs::symlink_status(file, error))) continue;  // never through a link
    if (!fs::remove(file, error) || error) throw Error(file.string() + ": cannot remove it: " + error.message());
    ++removed;
  }
  return removed;
}

}  // namespace q3vl
