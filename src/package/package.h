#pragma once
// A q3vl package folder as the runtime sees it: the manifest (model config, preprocessing,
// generation defaults) and the paths of its models and tokenizer. Checked on open.
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/generation_config.h"
#include "package/format.h"
#include "package/manifest.h"
#include "q3vl/sampling.h"

namespace q3vl {

struct GenerationDefaults {
  SamplingOptions sampling;
  std::vector<std::int64_t> eos_token_ids;
};

class Package {
 public:
  // Throws InvalidInput if the folder is not a complete q3vl package.
  static Package open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const nlohmann::json& preprocessor_config() const { return preprocessor_; }
  const nlohmann::json& video_preprocessor_config() const { return video_preprocessor_; }
  const GenerationDefaults& generation_defaults() const { return generation_; }
  // genai_config.json's search.max_length: the default context length.
  std::int64_t max_length() const { return max_length_; }
  // True when the decoder's linear layers are fp32 (not MatMulNBits).
  bool float_decoder() const { return float_decoder_; }
  // True when the vision encoder's linear layers are float (fp32 or fp16, not MatMulNBits).
  bool float_vision() const { return float_vision_; }
  std::filesystem::path vision_model() const;
  std::filesystem::path embedding_model() const;
  std::filesystem::path text_model() const;
  std::filesystem::path tokenizer_json() const;

 private:
  std::filesystem::path dir_;
  ModelConfig config_;
  nlohmann::json preprocessor_;
  nlohmann::json video_preprocessor_;
  GenerationDefaults generation_;
  std::int64_t max_length_ = 4096;
  bool float_decoder_ = true;
  bool float_vision_ = true;
};

// Names and static dims (-1 where symbolic) of a model's inputs and outputs, as its loaded session
// reports them (see OnnxSession::interface).
using ModelInterface = std::map<std::string, std::vector<std::int64_t>>;

// The manifest's config must describe the models next to it; otherwise ONNX Runtime fails later
// with a message about tensors, or (vocabulary) the sampler silently reads the wrong logits.
// Throws InvalidInput naming the model, the dimension and the manifest field that disagree.
void check_model_interface(const Package& package, PackagePart part, const ModelInterface& io);

}  // namespace q3vl
