#include "model/preprocessor_config.h"

#include "q3vl/error.h"

namespace q3vl {
namespace {

using nlohmann::json;

float json_float(const json& value, const std::string& what, const std::string& source) {
  if (!value.is_number()) throw InvalidInput(source + ": " + what + " must be a number, not " + value.dump());
  return static_cast<float>(value.get<double>());
}

std::array<float, 3> json_channels(const json& value, const std::string& what, const std::string& source) {
  if (value.is_number()) {
    const float v = json_float(value, what, source);
    return {v, v, v};
  }
  if (!value.is_array() || value.size() != 3) {
    throw InvalidInput(source + ": " + what + " must be a number or a list of 3 numbers, not " + value.dump());
  }
  return {json_float(value[0], what, source), json_float(value[1], what, source), json_float(value[2], what, source)};
}

std::int64_t json_pixels(const json& value, const std::string& what, const std::string& source) {
  if (!value.is_number_integer() || value.get<std::int64_t>() <= 0) {
    throw InvalidInput(source + ": " + what + " must be a positive integer, not " + value.dump());
  }
  return value.get<std::int64_t>();
}

}  // namespace

PreprocessOptions read_preprocess_options(const nlohmann::json& config, const std::string& source) {
  if (!config.is_object()) throw InvalidInput(source + ": the preprocessor config must be a JSON object");
  PreprocessOptions options;
  if (const auto size = config.find("size"); size != config.end() && !size->is_null()) {
    if (!size->is_object()) throw InvalidInput(source + ": size must be an object, not " + size->dump());
    for (const auto& [key, target] : {std::pair{"shortest_edge", &options.min_pixels},
                                      std::pair{"longest_edge", &options.max_pixels},
                                      std::pair{"min_pixels", &options.min_pixels},
                                      std::pair{"max_pixels", &options.max_pixels}}) {
      if (size->contains(key)) *target = json_pixels(size->at(key), std::string("size.") + key, source);
    }
  }
  // HF: explicit min_pixels / max_pixels override the size dictionary.
  if (config.contains("min_pixels") && !config["min_pixels"].is_null()) {
    options.min_pixels = json_pixels(config["min_pixels"], "min_pixels", source);
  }
  if (config.contains("max_pixels") && !config["max_pixels"].is_null()) {
    options.max_pixels = json_pixels(config["max_pixels"], "max_pixels", source);
  }
  if (config.contains("image_mean")) options.mean = json_channels(config["image_mean"], "image_mean", source);
  if (config.contains("image_std")) options.std = json_channels(config["image_std"], "image_std", source);
  for (const float s : options.std) {
    if (s == 0.0f) throw InvalidInput(source + ": image_std must not contain 0");
  }
  if (config.contains("rescale_factor")) {
    const json& factor = config["rescale_factor"];
    if (!factor.is_number() || factor.get<double>() <= 0) {
      throw InvalidInput(source + ": rescale_factor must be a positive number, not " + factor.dump());
    }
    options.rescale_factor = factor.get<double>();
  }
  for (const char* step : {"do_resize", "do_rescale", "do_normalize", "do_convert_rgb"}) {
    if (config.contains(step) && config[step].is_boolean() && !config[step].get<bool>()) {
      throw Unsupported(source + ": " + step + " = false; only HF's default image pipeline is implemented");
    }
  }
  if (config.contains("resample") && config["resample"] != 3) {
    throw Unsupported(source + ": resample = " + config["resample"].dump() + "; only bicubic (3) is implemented");
  }
  return options;
}

}  // namespace q3vl
