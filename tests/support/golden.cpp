#include "support/golden.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "support/test_support.h"
#include "util/files.h"

namespace q3vl::test {

const nlohmann::json& golden_manifest() {
  static const nlohmann::json kManifest = nlohmann::json::parse(read_text_file(golden_dir() / "manifest.json"));
  return kManifest;
}

std::filesystem::path moe_golden_dir() { return golden_dir() / "moe"; }

const nlohmann::json& moe_golden_manifest() {
  static const nlohmann::json kManifest = nlohmann::json::parse(read_text_file(moe_golden_dir() / "manifest.json"));
  return kManifest;
}

namespace {

std::filesystem::path root_of(const GoldenCase& c) { return c.moe ? moe_golden_dir() : golden_dir(); }
const nlohmann::json& manifest_of(const GoldenCase& c) { return c.moe ? moe_golden_manifest() : golden_manifest(); }

}  // namespace

std::filesystem::path reference_video_preprocessor_config() {
  return std::filesystem::path(Q3VL_SOURCE_DIR) / "assets" / "qwen3-vl" / "video_preprocessor_config.json";
}

std::filesystem::path GoldenCase::model_dir() const {
  return root_of(*this) / manifest_of(*this)["models"][model()]["dir"].get<std::string>();
}

NpyArray GoldenCase::load(const std::string& array) const {
  const auto& info = entry["arrays"].at(array);
  return read_npy(root_of(*this) / entry["dir"].get<std::string>() / info["file"].get<std::string>());
}

ModelConfig GoldenCase::config() const { return load_model_config(model_dir() / "config.json"); }

std::vector<GridThw> GoldenCase::grids() const {
  std::vector<GridThw> out;
  if (!has("image_grid_thw")) return out;
  const std::vector<std::int64_t> thw = load("image_grid_thw").as_int64();
  for (std::size_t i = 0; i + 2 < thw.size(); i += 3) out.push_back({thw[i], thw[i + 1], thw[i + 2]});
  return out;
}

GoldenCase golden_case(const std::string& name) {
  for (GoldenCase& c : golden_cases()) {
    if (c.name == name) return c;
  }
  throw std::runtime_error("no golden case named " + name);
}

std::size_t golden_cases_with_images() {
  std::size_t n = 0;
  for (const auto& [name, entry] : golden_manifest()["cases"].items()) n += entry.contains("images") && !entry["images"].empty();
  return n;
}

std::vector<GoldenCase> golden_cases() {
  std::vector<GoldenCase> cases;
  for (const auto& [name, entry] : golden_manifest()["cases"].items()) cases.push_back(GoldenCase{name, entry});
  return cases;
}

std::vector<GoldenCase> moe_golden_cases() {
  std::vector<GoldenCase> cases;
  for (const auto& [name, entry] : moe_golden_manifest()["cases"].items()) cases.push_back(GoldenCase{name, entry, true});
  return cases;
}

Difference compare(std::span<const float> actual, std::span<const float> expected) {
  Difference d;
  if (actual.size() != expected.size()) {
    d.max_abs = INFINITY;
    return d;
  }
  for (std::size_t i = 0; i < actual.size(); ++i) {
    d.max_abs = std::max(d.max_abs, static_cast<double>(std::fabs(actual[i] - expected[i])));
    d.reference_scale = std::max(d.reference_scale, static_cast<double>(std::fabs(expected[i])));
    if (std::isnan(actual[i])) d.max_abs = INFINITY;
  }
  return d;
}

}  // namespace q3vl::test
