#include "runtime/package.h"


#include "export/package_names.h"
#include "model/generation_config.h"
#include "q3vl/error.h"
#include "util/files.h"

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

}  // namespace

Package Package::open(const fs::path& dir) {
  const fs::path manifest_path = dir / package::kManifest;
  if (!fs::exists(manifest_path)) {
    throw InvalidInput(dir.string() + " is not a q3vl package (no " + package::kManifest + "; build one with q3vl build)");
  }
  const json manifest = read_json_file(manifest_path);
  Package p;
  p.dir_ = dir;
  if (!manifest.contains("config")) throw InvalidInput(manifest_path.string() + ": no model config");
  p.config_ = parse_model_config(manifest["config"], manifest_path.string() + " (config)");
  p.preprocessor_ = manifest.value("preprocessor_config", json::object());
  p.generation_ = to_defaults(parse_generation_config(manifest.value("generation_config", json::object()), p.config_,
                                                              manifest_path.string() + " (generation_config)"));
  const json parts = manifest.value("parts", json::object());
  if (parts.contains("text") && parts["text"].contains("linear")) {
    p.float_decoder_ = parts["text"]["linear"].value("weights", std::string("fp32")) == "fp32";  // fp32 or fp16
  }
  if (fs::exists(dir / package::kGenaiConfig)) {
    const json genai = read_json_file(dir / package::kGenaiConfig);
    if (genai.contains("search") && genai["search"].contains("max_length")) {
      p.max_length_ = genai["search"]["max_length"].get<std::int64_t>();
    }
  }
  for (const fs::path& file : {p.embedding_model(), p.text_model(), p.tokenizer_json()}) {
    if (!fs::exists(file)) throw InvalidInput(file.string() + " is missing from the package");
  }
  return p;
}

fs::path Package::vision_model() const { return dir_ / package::kVisionModel; }
fs::path Package::embedding_model() const { return dir_ / package::kEmbeddingModel; }
fs::path Package::text_model() const { return dir_ / package::kTextModel; }
fs::path Package::tokenizer_json() const { return dir_ / "tokenizer.json"; }

}  // namespace q3vl
