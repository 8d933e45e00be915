#include "package/manifest.h"

#include "model/preprocessor_config.h"
#include "package/format.h"
#include "q3vl/error.h"
#include "util/assets.h"
#include "util/files.h"
#include "util/json_fields.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A part's record: {"file": NAME, "fp16": bool, "linear"/"table"/"lm_head": {"weights": ..., ...}}.
void check_part(const JsonField& part, const char* expected_file) {
  part.require_object();
  const JsonField file = part.at("file");
  if (file.string() != expected_file) file.fail("is \"" + file.string() + "\", expected \"" + expected_file + "\"");
  part.boolean("fp16", false);
  for (const char* key : {"linear", "table", "lm_head"}) {
    const auto linear = part.find(key);
    if (!linear) continue;
    linear->require_object();
    if (const auto weights = linear->find("weights")) {
      const std::string format = weights->string();
      if (format != "fp32" && format != "int8" && format != "int4") {
        weights->fail("\"" + format + "\" is not fp32, int8 or int4");
      }
    }
    linear->integer("block_size", 32);
    linear->boolean("symmetric", true);
    linear->integer("accuracy_level", 4);
  }
}

}  // namespace

PackageManifest read_package_manifest(const fs::path& dir) {
  const fs::path path = dir / package::kManifest;
  if (!fs::exists(path)) {
    throw InvalidInput(dir.string() + " is not a q3vl package (no " + package::kManifest + "; build one with q3vl build)");
  }
  const json document = read_json_bounded(path);
  const JsonField root(document, path.string());
  root.require_object();
  const JsonField format = root.at("format");
  if (format.string() != package::kFormat) format.fail("is \"" + format.string() + "\", expected \"" + package::kFormat + "\"");
  const JsonField version = root.at("format_version");
  const std::int64_t format_version = version.integer();
  if (format_version > package::kFormatVersion) {
    version.fail(std::to_string(format_version) + ": this package was written by a newer q3vl (this one reads format " +
                 std::to_string(package::kFormatVersion) + "); upgrade q3vl, or rebuild the package with this one");
  }
  if (format_version < 1) version.fail("must be at least 1, got " + std::to_string(format_version));

  PackageManifest m;
  m.config = parse_model_config(root.object("config"));
  const json no_generation_config = json::object();
  m.generation = parse_generation_config(root.find("generation_config") ? root.object("generation_config")
                                                                         : JsonField(no_generation_config, path.string()),
                                         m.config);
  if (const auto preprocessor = root.find("preprocessor_config")) {
    read_preprocess_options(*preprocessor);
    m.preprocessor = preprocessor->value();
  } else {
    m.preprocessor = json::object();
  }
  if (const auto video = root.find("video_preprocessor_config")) {
    read_video_preprocess_options(*video);
    m.video_preprocessor = video->value();
  } else {
    // Backwards compatibility only: a package built before the manifest recorded
    // video_preprocessor_config has none, and was always read with this (Qwen3-VL-4B-Instruct's)
    // file; it still is. `build` no longer substitutes it: a checkpoint without one needs
    // --video-preprocessor-config, so every new package records its own.
    m.video_preprocessor = json::parse(assets::get("video_preprocessor_config.json"));
  }
  const JsonField width = root.at("visual_channel_width");
  if (width.integer() != package::visual_channel_width(m.config)) {
    width.fail(std::to_string(width.integer()) + " does not match the config (text_config.hidden_size x (1 + DeepStack levels) = " +
               std::to_string(package::visual_channel_width(m.config)) + ")");
  }
  const JsonField parts = root.object("parts");
  for (const auto& [name, record] : parts.value().items()) {
    if (name == "vision") check_part(parts.at(name), package::kVisionModel);
    else if (name == "embedding") check_part(parts.at(name), package::kEmbeddingModel);
    else if (name == "text") check_part(parts.at(name), package::kTextModel);
    else parts.at(name).fail("is not a package part (vision, embedding, text)");
    m.parts.insert(name);
  }
  if (const auto text = parts.find("text")) {
    if (const auto linear = text->find("linear")) m.float_decoder = linear->string("weights", "fp32") == "fp32";
  }
  if (const auto vision = parts.find("vision")) {
    if (const auto linear = vision->find("linear")) m.float_vision = linear->string("weights", "fp32") == "fp32";
  }
  return m;
}

void set_manifest_header(json& manifest, const json& config_json, const json& generation_config, const json& preprocessor_config,
                         const json& video_preprocessor_config, const ModelConfig& config) {
  manifest["format"] = package::kFormat;
  manifest["format_version"] = package::kFormatVersion;
  manifest["config"] = config_json;
  manifest["generation_config"] = generation_config;
  manifest["preprocessor_config"] = preprocessor_config;
  manifest["video_preprocessor_config"] = video_preprocessor_config;
  manifest["visual_channel_width"] = package::visual_channel_width(config);
}

}  // namespace q3vl
