#pragma once
// q3vl_package.json, read and written in one place: the exporter writes it last (its presence
// marks a complete package), every reader checks it field by field.
#include <filesystem>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/generation_config.h"

namespace q3vl {

// q3vl_package.json, checked field by field (format, format_version, config, generation and
// preprocessor configs, visual_channel_width, parts); errors name the file and the field path.
// Does not require the model files: `build --only` reads it before adding a part.
struct PackageManifest {
  ModelConfig config;
  GenerationConfig generation;
  nlohmann::json preprocessor;
  nlohmann::json video_preprocessor;  // packages written before video support: the reference file
  std::set<std::string> parts;  // "vision", "embedding", "text"
  bool float_decoder = true;
  bool float_vision = true;
};
PackageManifest read_package_manifest(const std::filesystem::path& dir);

// Sets the manifest's top-level fields (format, format_version, the checkpoint's config,
// generation and preprocessor configs, visual_channel_width) next to its "parts".
void set_manifest_header(nlohmann::json& manifest, const nlohmann::json& config_json, const nlohmann::json& generation_config,
                         const nlohmann::json& preprocessor_config, const nlohmann::json& video_preprocessor_config,
                         const ModelConfig& config);

}  // namespace q3vl
