#include "engine/text_models.h"

#include <algorithm>
#include <string>

#include "package/format.h"
#include "q3vl/error.h"

namespace q3vl {
EmbeddingModel::EmbeddingModel(OnnxEnvironment& environment, const std::filesystem::path& model,
                               const ModelConfig& config, const SessionOptions& options)
    : session_(environment, model, options), config_(config) {}

std::vector<float> EmbeddingModel::embed(std::span<const std::int64_t> ids, const VisualFeatures* features) const try {

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
} catch (const Ort::Exception& e) {
  // ONNX Runtime errors outside Run (tensor creation, bindings, outputs) with the model named too.
  throw Error(session_.path().string() + ": ONNX Runtime: " + e.what());
}

DecoderModel::DecoderModel(OnnxEnvironment& environment, const std::filesystem::path& model, const ModelConfig& config,
                           const SessionOptions& options)
    : session_(environment, model, options), config_(config) {
  const std::vector<std::string> outputs = session_.output_names();
  has_hidden_states_ = std::find(outputs.begin(), outputs.end(), package::hidden_state(0)) != outputs.end();
  // The cache element type is whatever the export chose (float32, or float16 for fp16 packages).
  const std::vector<std::string> inputs = session_.input_names();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i] != package::past_key(0)) continue;
    kv_type_ = session_.session().GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetElementType();
  }
  if (kv_type_ == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
    kv_element_bytes_ = 2;
  } else if (kv_type_ != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
    throw InvalidInput(model.string() + ": the KV cache must be float32 or float16");
  }
}

KvCache DecoderModel::new_cache(std::int64_t context_length) const {
  if (context_length <= 0) throw InvalidInput("context length must be positive");
  return KvCache(config_.text.num_hidden_layers, config_.text.num_key_value_heads, config_.text.head_dim, kv_element_bytes_,
                 context_length);
}

KvCache::KvCache(std::int64_t layers, std::int64_t kv_heads, std::int64_t head_dim, std::size_t element_bytes,
                 std::int64_t context_length)
    : kv_heads_(kv_heads), head_dim_(head_dim), element_bytes_(element_bytes), context_length_(context_length),
      kv_(static_cast<std::size_t>(2 * layers)) {}

std::size_t KvCache::allocated_bytes() const {
  std::size_t total = 0;
  for (const std::vector<std::uint8_t>& buffer : kv_) total += buffer.size();
  return total;
}

void KvCache::truncate(std::int64_t tokens) {
  if (tokens < 0 || tokens > cached_) throw Error("cannot truncate the KV cache to " + std::to_string(tokens) + " tokens");
  cached_ = tokens;  // GQA reads only the first seqlens_k + 1 entries; the rest is overwritten later
}

void KvCache::reserve(std::int64_t tokens) {
  if (tokens <= capacity_) return;
  std::int64_t capacity = std::max<std::int64_t>(capacity_, 256);
  while (capacity < tokens) capacity *= 2;
  capacity = std::min(capacity, context_length_);
  const std::int64_t row_bytes = head_dim_ * static_cast<std::int64_t>(element_bytes_);
  for (std::vector<std::uint8_t>& buffer : kv_) {
    std::vector<std::uint8_t> grown(static_cast<std::size_t>(kv_heads_ * capacity * row_bytes), 0);
    for (std::int64_t head = 0; head < kv_heads_ && capacity_ > 0; ++head) {
      std::copy_n(buffer.begin() + head * capacity_ * row_bytes, cached_ * row_bytes,
                  grown.begin() + head * capacity * row_bytes);
    }
    buffer = std::move(grown);
  }
  capacity_ = capacity;
}

DecoderOutput DecoderModel::forward(KvCache& cache, std::span<const float> embeddings,
                                   std::span<const std::int64_t> positions) const try {

  const TextConfig& t = config_.text;
  const std::int64_t width = package::visual_channel_width(config_);
  const std::int64_t S = static_cast<std::int64_t>(positions.size()) / 3;
  if (S <= 0 || static_cast<std::int64_t>(positions.size()) != 3 * S ||
      static_cast<std::int64_t>(embeddings.size()) != S * width) {
    throw InvalidInput("decoder input: " + std::to_string(embeddings.size()) + " embedding values and " +
                       std::to_string(positions.size()) + " position ids do not describe the same tokens");
  }
  if (cache.cached_ + S > cache.context_length_) {
    throw InvalidInput("context overflow: " + std::to_string(cache.cached_) + " cached + " + std::to_string(S) +
                       " new tokens exceed the context length of " + std::to_string(cache.context_length_) +
                       " (raise it with --context)");
  }
  if (cache.kv_.size() != static_cast<std::size_t>(2 * t.num_hidden_layers) || cache.kv_heads_ != t.num_key_value_heads ||
      cache.head_dim_ != t.head_dim || cache.element_bytes_ != kv_element_bytes_) {
    throw Error(session_.path().string() + ": the KV cache was made by a model of another shape");
  }
  cache.reserve(cache.cached_ + S);
  std::vector<float> embed_copy(embeddings.begin(), embeddings.end());
  std::vector<std::int64_t> position_copy(positions.begin(), positions.end());
  std::vector<std::int64_t> mask(static_cast<std::size_t>(cache.cached_ + S), 1);
  const std::vector<std::int64_t> kv_shape = {1, t.num_key_value_heads, cache.capacity_, t.head_dim};

  Ort::IoBinding binding(session_.session());
  Ort::Value embeds_value = tensor_view(embed_copy, {1, S, width});
  Ort::Value mask_value = tensor_view(mask, {1, cache.cached_ + S});
  Ort::Value position_value = tensor_view(position_copy, {3, 1, S});
  binding.BindInput(package::kInputsEmbeds, embeds_value);
  binding.BindInput(package::kAttentionMask, mask_value);
  binding.BindInput(package::kPositionIds, position_value);
  const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::vector<Ort::Value> kv_values;
  for (std::int64_t l = 0; l < t.num_hidden_layers; ++l) {
    for (int which = 0; which < 2; ++which) {
      std::vector<std::uint8_t>& buffer = cache.kv_[static_cast<std::size_t>(2 * l + which)];
      kv_values.push_back(Ort::Value::CreateTensor(cpu, buffer.data(), buffer.size(), kv_shape.data(), kv_shape.size(), kv_type_));
      binding.BindInput((which == 0 ? package::past_key(l) : package::past_value(l)).c_str(), kv_values.back());
      binding.BindOutput((which == 0 ? package::present_key(l) : package::present_value(l)).c_str(), kv_values.back());
    }
  }
  binding.BindOutput(package::kLogits, cpu);
  if (has_hidden_states_) {
    for (std::int64_t l = 0; l < t.num_hidden_layers; ++l) binding.BindOutput(package::hidden_state(l).c_str(), cpu);
  }
  session_.run(binding);
  std::vector<Ort::Value> outputs = binding.GetOutputValues();
  const std::vector<std::string> names = binding.GetOutputNames();

  DecoderOutput result;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == package::kLogits) {
      const std::vector<std::int64_t> shape = tensor_shape(outputs[i]);
      result.positions = shape.at(1);
      const float* logits = outputs[i].GetTensorData<float>();
      result.logits.assign(logits, logits + result.positions * shape.at(2));
    }
  }
  if (has_hidden_states_) {
    for (std::int64_t l = 0; l < t.num_hidden_layers; ++l) {
      for (std::size_t i = 0; i < names.size(); ++i) {
        if (names[i] != package::hidden_state(l)) continue;
        const float* data = outputs[i].GetTensorData<float>();
        result.hidden_states.emplace_back(data, data + S * t.hidden_size);
      }
    }
  }
  cache.cached_ += S;
  return result;
} catch (const Ort::Exception& e) {
  // ONNX Runtime errors outside Run (tensor creation, bindings, outputs) with the model named too.
  throw Error(session_.path().string() + ": ONNX Runtime: " + e.what());
}

}  // namespace q3vl
