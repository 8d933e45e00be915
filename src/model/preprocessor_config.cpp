#include "model/preprocessor_config.h"

#include <cmath>

#include "q3vl/error.h"
#include "util/json_fields.h"

namespace q3vl {
namespace {

float channel_value(const JsonField& value) {
  const double number = value.number();
  if (!std::isfinite(static_cast<float>(number))) value.fail(value.value().dump() + " does not fit float32");
  return static_cast<float>(number);
}

std::array<float, 3> channels(const JsonField& value) {
  if (value.value().is_number()) {
    const float v = channel_value(value);
    return {v, v, v};
  }
  const std::vector<JsonField> items = value.value().is_array() ? value.items(3) : std::vector<JsonField>{};
  if (items.size() != 3) value.expected("a number or a list of 3 numbers");
  return {channel_value(items[0]), channel_value(items[1]), channel_value(items[2])};
}

std::int64_t pixels(const JsonField& value) {
  const std::int64_t n = value.integer();
  if (n <= 0) value.fail("must be a positive integer, got " + std::to_string(n));
  return n;
}

}  // namespace

namespace {

PreprocessOptions read_pixel_options(const JsonField& config, PreprocessOptions options) {
  config.require_object();
  if (const auto size = config.find("size")) {
    size->require_object();
    for (const auto& [key, target] : {std::pair{"shortest_edge", &options.min_pixels},
                                      std::pair{"longest_edge", &options.max_pixels},
                                      std::pair{"min_pixels", &options.min_pixels},
                                      std::pair{"max_pixels", &options.max_pixels}}) {
      if (const auto field = size->find(key)) *target = pixels(*field);
    }
  }
  // HF: explicit min_pixels / max_pixels override the size dictionary.
  if (const auto field = config.find("min_pixels")) options.min_pixels = pixels(*field);
  if (const auto field = config.find("max_pixels")) options.max_pixels = pixels(*field);
  if (const auto field = config.find("image_mean")) options.mean = channels(*field);
  if (const auto field = config.find("image_std")) {
    options.std = channels(*field);
    for (const float s : options.std) {
      if (s == 0.0f) field->fail("must not contain 0 (division by zero)");
    }
  }
  if (const auto field = config.find("rescale_factor")) {
    options.rescale_factor = field->number();
    if (!(options.rescale_factor > 0)) field->fail("must be a positive number, got " + field->value().dump());
  }
  for (const char* step : {"do_resize", "do_rescale", "do_normalize", "do_convert_rgb"}) {
    if (const auto field = config.find(step); field && !field->boolean()) {
      throw Unsupported(config.file() + ": " + step + " = false; only HF's default image pipeline is implemented");
    }
  }
  if (const auto field = config.find("resample"); field && field->integer() != 3) {
    throw Unsupported(config.file() + ": resample = " + field->value().dump() + "; only bicubic (3) is implemented");
  }
  return options;
}

}  // namespace

PreprocessOptions read_preprocess_options(const JsonField& config) { return read_pixel_options(config, {}); }

VideoPreprocessOptions read_video_preprocess_options(const JsonField& config) {
  VideoPreprocessOptions options;
  options.pixels = read_pixel_options(config, options.pixels);
  if (const auto field = config.find("fps")) {
    options.fps = field->number();
    if (!(options.fps > 0 && options.fps <= 1000)) field->fail("must be a number in (0, 1000], got " + field->value().dump());
  }
  for (const auto& [key, target] : {std::pair{"min_frames", &options.min_frames}, std::pair{"max_frames", &options.max_frames}}) {
    if (const auto field = config.find(key)) {
      *target = field->integer();
      if (*target < 1 || *target > 100000) field->fail("must be an integer in [1, 100000], got " + field->value().dump());
    }
  }
  if (options.min_frames > options.max_frames) {
    config.fail("min_frames " + std::to_string(options.min_frames) + " exceeds max_frames " + std::to_string(options.max_frames));
  }
  if (const auto field = config.find("do_sample_frames"); field && !field->boolean()) {
    throw Unsupported(config.file() + ": do_sample_frames = false; q3vl always samples frames like HF's default");
  }
  return options;
}

PreprocessOptions read_preprocess_options(const nlohmann::json& config, const std::string& source) {
  return read_preprocess_options(JsonField(config, source));
}

}  // namespace q3vl
