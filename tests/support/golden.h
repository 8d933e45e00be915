#pragma once
// Access to the golden fixtures (tests/fixtures/golden/manifest.json) and tensor comparison.
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "math/grid.h"
#include "model/config.h"
#include "util/npy.h"

namespace q3vl::test {

const nlohmann::json& golden_manifest();
// The Qwen3-VL MoE fixtures (tests/fixtures/golden/moe: manifest.json in the same schema).
std::filesystem::path moe_golden_dir();
const nlohmann::json& moe_golden_manifest();

struct GoldenCase {
  std::string name;
  nlohmann::json entry;
  bool moe = false;  // from the MoE manifest (its paths are relative to moe_golden_dir())

  std::string model() const { return entry["model"].get<std::string>(); }
  std::filesystem::path model_dir() const;
  bool has(const std::string& array) const { return entry["arrays"].contains(array); }
  NpyArray load(const std::string& array) const;
  ModelConfig config() const;  // the case's model's config.json
  // image_grid_thw as grids (empty for text-only cases).
  std::vector<GridThw> grids() const;
};

// The case with this name; throws if the fixtures have none.
GoldenCase golden_case(const std::string& name);

std::vector<GoldenCase> golden_cases();
std::vector<GoldenCase> moe_golden_cases();

// The golden `full` model has no video_preprocessor_config.json (the generator writes none): its
// packages are built with Qwen3-VL-4B-Instruct's (assets/qwen3-vl), the file the video fixtures
// were generated with (tests/fixtures/video/README.md), passed explicitly as
// `build --video-preprocessor-config` would (build substitutes no file of its own).
std::filesystem::path reference_video_preprocessor_config();
// Cases whose manifest entry lists images (read from the manifest, not from the arrays present):
// what a loop over the cases with pixel_values must have checked.
std::size_t golden_cases_with_images();

// Largest absolute difference relative to the largest magnitude in the reference.
struct Difference {
  double max_abs = 0;
  double reference_scale = 0;
  double relative() const { return reference_scale > 0 ? max_abs / reference_scale : max_abs; }
};
Difference compare(std::span<const float> actual, std::span<const float> expected);

}  // namespace q3vl::test
