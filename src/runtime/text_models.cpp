#include "runtime/text_models.h"

#include <algorithm>
#include <string>

#include "export/package_names.h"
#include "q3vl/error.h"

namespace q3vl {
namespace {

Ort::Value empty_cache(const TextConfig& t) {
  Ort::AllocatorWithDefaultOptions allocator;
  const std::vector<std::int64_t> shape = {1, t.num_key_value_heads, 0, t.head_dim};
  return Ort::Value::CreateTensor<float>(allocator, shape.data(), shape.size());
}

}  // namespace

EmbeddingModel::EmbeddingModel(OnnxEnvironment& environment, const std::filesystem::path& model,
                               const ModelConfig& config, const SessionOptions& options)
    : session_(environment, model, options), config_(config) {}

std::vector<float> EmbeddingModel::embed(std::span<const std::int64_t> ids, const VisualFeatures* features) {
  const std::int64_t width = package::visual_channel_width(config_);
  const std::int64_t pads = std::count_if(ids.begin(), ids.end(), [this](std::int64_t id) {
    return id == config_.image_token_id || id == config_.video_token_id;
  });
  const std::int64_t rows = features != nullptr ? features->tokens : 0;
  if (pads != rows) {
    throw InvalidInput("the prompt has " + std::to_string(pads) + " image pad tokens but the images give " +
                       std::to_string(rows) + " feature rows");
  }
  if (features != nullptr && features->width != width) {
    throw InvalidInput("visual features are " + std::to_string(features->width) + " wide, the package expects " +
                       std::to_string(width));
  }
  for (std::int64_t id : ids) {
    if (id < 0 || id >= config_.text.vocab_size) throw InvalidInput("token id " + std::to_string(id) + " is outside the vocabulary");
  }
  std::vector<std::int64_t> id_copy(ids.begin(), ids.end());
  std::vector<float> no_features;
  std::vector<Ort::Value> inputs;
  inputs.push_back(tensor_view(id_copy, {1, static_cast<std::int64_t>(ids.size())}));
  inputs.push_back(features != nullptr
                       ? tensor_view(std::span<float>(const_cast<float*>(features->data.data()), features->data.size()), {rows, width})
                       : tensor_view(no_features, {0, width}));
  auto out = session_.run({package::kInputIds, package::kImageFeatures}, inputs, {package::kInputsEmbeds});
  const float* data = out[0].GetTensorData<float>();
  return {data, data + ids.size() * static_cast<std::size_t>(width)};
}

TextDecoder::TextDecoder(OnnxEnvironment& environment, const std::filesystem::path& model, const ModelConfig& config,
                         const SessionOptions& options)
    : session_(environment, model, options), config_(config) {
  input_names_ = {package::kInputsEmbeds, package::kAttentionMask, package::kPositionIds};
  output_names_ = {package::kLogits};
  for (std::int64_t l = 0; l < config.text.num_hidden_layers; ++l) {
    input_names_.push_back(package::past_key(l));
    input_names_.push_back(package::past_value(l));
    output_names_.push_back(package::present_key(l));
    output_names_.push_back(package::present_value(l));
  }
  const std::vector<std::string> outputs = session_.output_names();
  has_hidden_states_ = std::find(outputs.begin(), outputs.end(), package::hidden_state(0)) != outputs.end();
  if (has_hidden_states_) {
    for (std::int64_t l = 0; l < config.text.num_hidden_layers; ++l) output_names_.push_back(package::hidden_state(l));
  }
  reset();
}

void TextDecoder::reset() {
  cache_.clear();
  for (std::int64_t l = 0; l < 2 * config_.text.num_hidden_layers; ++l) cache_.push_back(empty_cache(config_.text));
  cached_ = 0;
}

DecoderOutput TextDecoder::forward(std::span<const float> embeddings, std::span<const std::int64_t> positions) {
  const std::int64_t width = package::visual_channel_width(config_);
  const std::int64_t S = static_cast<std::int64_t>(positions.size()) / 3;
  if (S <= 0 || static_cast<std::int64_t>(positions.size()) != 3 * S ||
      static_cast<std::int64_t>(embeddings.size()) != S * width) {
    throw InvalidInput("decoder input: " + std::to_string(embeddings.size()) + " embedding values and " +
                       std::to_string(positions.size()) + " position ids do not describe the same tokens");
  }
  std::vector<float> embed_copy(embeddings.begin(), embeddings.end());
  std::vector<std::int64_t> position_copy(positions.begin(), positions.end());
  std::vector<std::int64_t> mask(static_cast<std::size_t>(cached_ + S), 1);
  std::vector<Ort::Value> inputs;
  inputs.push_back(tensor_view(embed_copy, {1, S, width}));
  inputs.push_back(tensor_view(mask, {1, cached_ + S}));
  inputs.push_back(tensor_view(position_copy, {3, 1, S}));
  for (Ort::Value& past : cache_) inputs.push_back(std::move(past));
  std::vector<Ort::Value> outputs;
  try {
    outputs = session_.run(input_names_, inputs, output_names_);
  } catch (...) {
    reset();  // the cache was handed to the failed run
    throw;
  }
  DecoderOutput result;
  const std::vector<std::int64_t> logit_shape = tensor_shape(outputs[0]);
  result.positions = logit_shape.at(1);
  const float* logits = outputs[0].GetTensorData<float>();
  result.logits.assign(logits, logits + result.positions * logit_shape.at(2));
  for (std::size_t i = 0; i < cache_.size(); ++i) cache_[i] = std::move(outputs[1 + i]);
  if (has_hidden_states_) {
    for (std::int64_t l = 0; l < config_.text.num_hidden_layers; ++l) {
      const Ort::Value& h = outputs[1 + cache_.size() + static_cast<std::size_t>(l)];
      const float* data = h.GetTensorData<float>();
      result.hidden_states.emplace_back(data, data + S * config_.text.hidden_size);
    }
  }
  cached_ += S;
  return result;
}

}  // namespace q3vl
