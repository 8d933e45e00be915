#include "package/package.h"

#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>


#include "package/format.h"
#include "model/generation_config.h"
#include "model/preprocessor_config.h"
#include "q3vl/error.h"
#include "util/files.h"
#include "util/json_fields.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

GenerationDefaults to_defaults(const GenerationConfig& g) {
  GenerationDefaults out;
  out.sampling.greedy = !g.do_sample;
  out.sampling.temperature = g.temperature;
  out.sampling.top_k = g.top_k;
  out.sampling.top_p = g.top_p;
  out.sampling.min_p = g.min_p;
  out.sampling.repetition_penalty = g.repetition_penalty;
  out.eos_token_ids = g.eos_token_ids;
  return out;
}

// Product of positive sizes, saturating at UINT64_MAX.
std::uint64_t product(std::initializer_list<std::int64_t> sizes) {
  std::uint64_t out = 1;
  for (const std::int64_t size : sizes) {
    const auto factor = static_cast<std::uint64_t>(size);
    if (factor != 0 && out > std::numeric_limits<std::uint64_t>::max() / factor) return std::numeric_limits<std::uint64_t>::max();
    out *= factor;
  }
  return out;
}

// A manifest that says "N layers of H" next to a model file far too small to hold them (a
// hand-edited manifest) would make the runtime allocate for them; the weights of any format take at
// least half a byte each.
void check_fits(const fs::path& model, const std::string& what, std::uint64_t weights, const std::string& manifest) {
  if (!fs::exists(model)) return;
  const std::uint64_t bytes = onnx_model_bytes(model);
  if (weights / 2 > bytes) {
    throw InvalidInput(manifest + ": field \"config\" declares " + what + " (" + std::to_string(weights) +
                       " weights) but " + model.string() + " holds only " + std::to_string(bytes) +
                       " bytes (manifest edited, or from another model?)");
  }
}

// The manifest's config must describe the models next to it; otherwise ONNX Runtime fails later
// with a message about tensors, or (vocabulary) the sampler silently reads the wrong logits.
class InterfaceCheck {
 public:
  InterfaceCheck(const fs::path& model, const ModelInterface& io, std::string manifest)
      : model_(model), io_(io), manifest_(std::move(manifest)) {}
  // Dimension `axis` (negative: from the end) of `name` must equal `expected`, which `field` gives.
  void dim(const std::string& name, int axis, std::int64_t expected, const std::string& field) const {
    const auto it = io_.find(name);
    if (it == io_.end()) throw InvalidInput(model_.string() + ": has no input or output \"" + name + "\" (not a q3vl package model)");
    const auto& dims = it->second;
    const auto index = axis < 0 ? static_cast<std::ptrdiff_t>(dims.size()) + axis : axis;
    if (index < 0 || index >= static_cast<std::ptrdiff_t>(dims.size()) || dims[static_cast<std::size_t>(index)] != expected) {
      mismatch(name + " has dimension " + (index >= 0 && index < static_cast<std::ptrdiff_t>(dims.size()) ? std::to_string(dims[static_cast<std::size_t>(index)]) : "?") +
                   " where", expected, field);
    }
  }
  // Layers whose past key is an input (past_key_values.0.key, .1, ... without a gap).
  std::int64_t count_layers() const {
    std::int64_t n = 0;
    while (io_.count(package::past_key(n)) != 0) ++n;
    return n;
  }
  [[noreturn]] void mismatch(const std::string& what, std::int64_t expected, const std::string& field) const {
    throw InvalidInput(model_.string() + ": " + what + " " + manifest_ + " field \"" + field + "\" says " + std::to_string(expected) +
                       " (manifest edited, or a model from another build? rebuild the package)");
  }

 private:
  fs::path model_;
  const ModelInterface& io_;
  std::string manifest_;
};

}  // namespace

Package Package::open(const fs::path& dir) {
  PackageManifest manifest = read_package_manifest(dir);
  const std::string manifest_path = (dir / package::kManifest).string();
  Package p;
  p.dir_ = dir;
  p.config_ = manifest.config;
  p.preprocessor_ = std::move(manifest.preprocessor);
  p.video_preprocessor_ = std::move(manifest.video_preprocessor);
  p.generation_ = to_defaults(manifest.generation);
  p.float_decoder_ = manifest.float_decoder;
  p.float_vision_ = manifest.float_vision;
  for (const char* part : {"embedding", "text"}) {
    if (manifest.parts.count(part) == 0) {
      throw InvalidInput(manifest_path + ": field \"parts\" has no \"" + part +
                         "\" (the package was built with --only; build the missing part into it)");
    }
  }
  for (const fs::path& file : {p.embedding_model(), p.text_model(), p.tokenizer_json()}) {
    if (!fs::exists(file)) throw InvalidInput(file.string() + " is missing from the package");
  }
  if (manifest.parts.count("vision") != 0 && !fs::exists(p.vision_model())) {
    throw InvalidInput(p.vision_model().string() + " is missing from the package (its manifest lists a vision part)");
  }
  const TextConfig& t = p.config_.text;
  const VisionConfig& v = p.config_.vision;
  check_fits(p.text_model(), "text_config.num_hidden_layers x attention weights",
             product({t.num_hidden_layers, t.num_attention_heads, t.head_dim, t.hidden_size}), manifest_path);
  check_fits(p.embedding_model(), "text_config.vocab_size x hidden_size", product({t.vocab_size, t.hidden_size}), manifest_path);
  check_fits(p.vision_model(), "vision_config.depth x hidden_size^2", product({v.depth, v.hidden_size, v.hidden_size}),
             manifest_path);
  if (fs::exists(dir / package::kGenaiConfig)) {
    const json genai = read_json_bounded(dir / package::kGenaiConfig);
    const JsonField root(genai, (dir / package::kGenaiConfig).string());
    if (const auto search = root.find("search")) {
      if (const auto max_length = search->find("max_length")) {
        p.max_length_ = max_length->integer();
        if (p.max_length_ <= 0) max_length->fail("must be positive, got " + std::to_string(p.max_length_));
      }
    }
  }
  return p;
}

PackagePart parse_package_part(const std::string& text) {
  if (text == "vision") return PackagePart::Vision;
  if (text == "embedding") return PackagePart::Embedding;
  if (text == "text") return PackagePart::Text;
  throw InvalidInput("unknown package part \"" + text + "\" (expected vision, embedding or text)");
}

std::string to_string(PackagePart part) {
  switch (part) {
    case PackagePart::Vision: return "vision";
    case PackagePart::Embedding: return "embedding";
    case PackagePart::Text: return "text";
  }
  return "?";
}

void check_model_interface(const Package& p, PackagePart part, const ModelInterface& io) {
  const ModelConfig& c = p.config();
  const std::string manifest = (p.dir() / package::kManifest).string();
  const std::int64_t width = package::visual_channel_width(c);
  switch (part) {
    case PackagePart::Text: {
      const InterfaceCheck text(p.text_model(), io, manifest);
      const std::int64_t layers = text.count_layers();
      if (layers != c.text.num_hidden_layers) {
        text.mismatch("has " + std::to_string(layers) + " decoder layers (past_key_values inputs) where", c.text.num_hidden_layers,
                      "config.text_config.num_hidden_layers");
      }
      text.dim(package::kInputsEmbeds, -1, width, "visual_channel_width");
      text.dim(package::past_key(0), 1, c.text.num_key_value_heads, "config.text_config.num_key_value_heads");
      text.dim(package::past_key(0), 3, c.text.head_dim, "config.text_config.head_dim");
      text.dim(package::kLogits, -1, c.text.vocab_size, "config.text_config.vocab_size");
      return;
    }
    case PackagePart::Embedding: {
      const InterfaceCheck embedding(p.embedding_model(), io, manifest);
      embedding.dim(package::kImageFeatures, -1, width, "visual_channel_width");
      embedding.dim(package::kInputsEmbeds, -1, width, "visual_channel_width");
      return;
    }
    case PackagePart::Vision: {
      const InterfaceCheck vision(p.vision_model(), io, manifest);
      vision.dim(package::kPixelValues, -1, c.vision.patch_input_size(), "config.vision_config.patch_size");
      vision.dim(package::kImageFeatures, -1, width, "visual_channel_width");
      return;
    }
  }
}

fs::path Package::vision_model() const { return dir_ / package::kVisionModel; }
fs::path Package::embedding_model() const { return dir_ / package::kEmbeddingModel; }
fs::path Package::text_model() const { return dir_ / package::kTextModel; }
fs::path Package::tokenizer_json() const { return dir_ / "tokenizer.json"; }

}  // namespace q3vl
