// libFuzzer target for a checkpoint's JSON configs: any byte string read as config.json,
// generation_config.json or preprocessor_config.json must give values the exporter and runtime
// can use, or be rejected with a q3vl::Error; another exception, a crash, a sanitizer report or a
// parsed value that breaks the invariants below is a bug.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/generation_config.h"
#include "model/preprocessor_config.h"
#include "q3vl/error.h"
#include "util/assets.h"

namespace {

bool positive_finite(double value) { return std::isfinite(value) && value > 0; }

// What every accepted config must satisfy before anything is sized from it.
void check_model_config(const q3vl::ModelConfig& c) {
  const q3vl::TextConfig& t = c.text;
  if (t.vocab_size <= 0 || t.hidden_size <= 0 || t.intermediate_size <= 0 || t.num_hidden_layers <= 0 ||
      t.num_attention_heads <= 0 || t.num_key_value_heads <= 0 || t.head_dim <= 0 ||
      t.num_attention_heads % t.num_key_value_heads != 0 || !positive_finite(t.rope_theta) ||
      !positive_finite(t.rms_norm_eps)) {
    __builtin_trap();
  }
  const q3vl::VisionConfig& v = c.vision;
  if (v.depth <= 0 || v.hidden_size <= 0 || v.num_heads <= 0 || v.hidden_size % v.num_heads != 0 ||
      v.patch_size <= 0 || v.spatial_merge_size <= 0 || v.temporal_patch_size <= 0) {
    __builtin_trap();
  }
  for (const std::int64_t level : v.deepstack_visual_indexes) {
    if (level < 0 || level >= v.depth) __builtin_trap();
  }
}

const q3vl::ModelConfig& reference_config() {
  static const q3vl::ModelConfig config =
      q3vl::parse_model_config_text(std::string(q3vl::assets::get("config.json")), "config.json");
  return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    check_model_config(q3vl::parse_model_config_text(text, "fuzz config.json"));
  } catch (const q3vl::Error&) {
  }
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  try {
    const q3vl::GenerationConfig g = q3vl::parse_generation_config(json, reference_config(), "fuzz generation_config.json");
    if (g.top_k < 0 || !(g.temperature >= 0) || !(g.top_p >= 0 && g.top_p <= 1)) __builtin_trap();
  } catch (const q3vl::Error&) {
  }
  try {
    const q3vl::PreprocessOptions p = q3vl::read_preprocess_options(json, "fuzz preprocessor_config.json");
    // min_pixels above max_pixels is accepted as HF accepts it (smart_resize lets the maximum win).
    if (p.min_pixels <= 0 || p.max_pixels <= 0 || !positive_finite(p.rescale_factor)) __builtin_trap();
    for (const float s : p.std) {
      if (!std::isfinite(s) || s == 0) __builtin_trap();
    }
  } catch (const q3vl::Error&) {
  }
  return 0;
}
