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

KvLayout DecoderModel::kv_layout() const {
  return {config_.text.num_hidden_layers, config_.text.num_key_value_heads, config_.text.head_dim, kv_element_bytes_};
}

KvCache DecoderModel::new_cache(std::int64_t context_length) const {
  if (context_length <= 0) throw InvalidInput("context length must be positive");
  return KvCache(std::make_shared<KvPool>(kv_layout(), 1, context_length), context_length);
}

namespace {

// Binds every layer's cache tensors as past and present: `rows` rows of the pool from `first_row`.
void bind_cache(Ort::IoBinding& binding, KvPool& pool, std::int64_t first_row, std::int64_t rows,
                ONNXTensorElementDataType type, std::vector<Ort::Value>& values) {
  const KvLayout& layout = pool.layout();
  const std::vector<std::int64_t> shape = {rows, layout.kv_heads, pool.capacity(), layout.head_dim};
  const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  for (std::int64_t l = 0; l < layout.layers; ++l) {
    for (int which = 0; which < 2; ++which) {
      std::uint8_t* data = pool.tensor(static_cast<std::size_t>(2 * l + which), first_row);
      values.push_back(Ort::Value::CreateTensor(cpu, data, pool.row_bytes() * static_cast<std::size_t>(rows), shape.data(),
                                                shape.size(), type));
      binding.BindInput((which == 0 ? package::past_key(l) : package::past_value(l)).c_str(), values.back());
      binding.BindOutput((which == 0 ? package::present_key(l) : package::present_value(l)).c_str(), values.back());
    }
  }
}

}  // namespace

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
  const std::int64_t cached = cache.cached_tokens();
  if (cached + S > cache.context_length()) {
    throw InvalidInput("context overflow: " + std::to_string(cached) + " cached + " + std::to_string(S) +
                       " new tokens exceed the context length of " + std::to_string(cache.context_length()) +
                       " (raise it with --context)");
  }
  check_layout(cache);
  KvPool& pool = cache.pool();
  pool.reserve(cached + S);
  std::vector<float> embed_copy(embeddings.begin(), embeddings.end());
  std::vector<std::int64_t> position_copy(positions.begin(), positions.end());
  std::vector<std::int64_t> mask(static_cast<std::size_t>(cached + S), 1);

  Ort::IoBinding binding(session_.session());
  Ort::Value embeds_value = tensor_view(embed_copy, {1, S, width});
  Ort::Value mask_value = tensor_view(mask, {1, cached + S});
  Ort::Value position_value = tensor_view(position_copy, {3, 1, S});
  binding.BindInput(package::kInputsEmbeds, embeds_value);
  binding.BindInput(package::kAttentionMask, mask_value);
  binding.BindInput(package::kPositionIds, position_value);
  std::vector<Ort::Value> kv_values;
  bind_cache(binding, pool, cache.row(), 1, kv_type_, kv_values);
  const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
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
  pool.set_cached(cache.row(), cached + S);
  return result;
} catch (const Ort::Exception& e) {
  // ONNX Runtime errors outside Run (tensor creation, bindings, outputs) with the model named too.
  throw Error(session_.path().string() + ": ONNX Runtime: " + e.what());
}

void DecoderModel::check_layout(const KvCache& cache) const {
  const KvLayout& layout = cache.pool().layout();
  const KvLayout own = kv_layout();
  if (layout.layers != own.layers || layout.kv_heads != own.kv_heads || layout.head_dim != own.head_dim ||
      layout.element_bytes != own.element_bytes) {
    throw Error(session_.path().string() + ": the KV cache was made by a model of another shape");
  }
}

std::vector<float> DecoderModel::forward_batch(std::span<KvCache* const> caches, std::span<const float> embeddings,
                                               std::span<const std::int64_t> positions) const try {
  const std::int64_t width = package::visual_channel_width(config_);
  const auto n = static_cast<std::int64_t>(caches.size());
  if (n == 0) return {};
  if (static_cast<std::int64_t>(embeddings.size()) != n * width || static_cast<std::int64_t>(positions.size()) != 3 * n) {
    throw InvalidInput("batched decoder input: " + std::to_string(embeddings.size()) + " embedding values and " +
                       std::to_string(positions.size()) + " position ids for " + std::to_string(n) + " sequences");
  }
  KvPool& pool = caches[0]->pool();
  std::int64_t first_row = pool.rows(), last_row = -1;
  for (KvCache* cache : caches) {
    if (&cache->pool() != &pool) throw Error("internal: a decoder batch mixes sequences of different KV caches");
    check_layout(*cache);
    if (cache->cached_tokens() + 1 > cache->context_length()) {
      throw InvalidInput("context overflow: " + std::to_string(cache->cached_tokens()) +
                         " cached tokens fill the context length of " + std::to_string(cache->context_length()));
    }
    first_row = std::min(first_row, cache->row());
    last_row = std::max(last_row, cache->row());
  }
  // The batch is the rows first_row..last_row; row r's token goes at its position cached(r), so a
  // row not in the batch writes a placeholder just past what it holds.
  const std::int64_t rows = last_row - first_row + 1;
  std::vector<std::int64_t> lengths(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) lengths[static_cast<std::size_t>(r)] = pool.cached(first_row + r) + 1;
  const std::int64_t total = *std::max_element(lengths.begin(), lengths.end());
  pool.reserve(total);
  std::vector<float> embed_rows(static_cast<std::size_t>(rows * width), 0.0f);
  std::vector<std::int64_t> position_rows(static_cast<std::size_t>(3 * rows), 0);
  std::vector<std::int64_t> batch_index(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t r = caches[static_cast<std::size_t>(i)]->row() - first_row;
    batch_index[static_cast<std::size_t>(i)] = r;
    std::copy_n(embeddings.begin() + i * width, width, embed_rows.begin() + r * width);
    for (std::int64_t axis = 0; axis < 3; ++axis) position_rows[static_cast<std::size_t>(axis * rows + r)] = positions[static_cast<std::size_t>(axis * n + i)];
  }
  std::vector<std::int64_t> mask(static_cast<std::size_t>(rows * total), 0);
  for (std::int64_t r = 0; r < rows; ++r) {
    std::fill_n(mask.begin() + r * total, lengths[static_cast<std::size_t>(r)], 1);
  }

  Ort::IoBinding binding(session_.session());
  Ort::Value embeds_value = tensor_view(embed_rows, {rows, 1, width});
  Ort::Value mask_value = tensor_view(mask, {rows, total});
  Ort::Value position_value = tensor_view(position_rows, {3, rows, 1});
  binding.BindInput(package::kInputsEmbeds, embeds_value);
  binding.BindInput(package::kAttentionMask, mask_value);
  binding.BindInput(package::kPositionIds, position_value);
  std::vector<Ort::Value> kv_values;
  bind_cache(binding, pool, first_row, rows, kv_type_, kv_values);
  const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  binding.BindOutput(package::kLogits, cpu);
  session_.run(binding);
  std::vector<Ort::Value> outputs = binding.GetOutputValues();
  const std::vector<std::string> names = binding.GetOutputNames();
  const std::int64_t vocab = config_.text.vocab_size;
  std::vector<float> logits(static_cast<std::size_t>(n * vocab));
  for (std::size_t o = 0; o < names.size(); ++o) {
    if (names[o] != package::kLogits) continue;
    const std::vector<std::int64_t> shape = tensor_shape(outputs[o]);
    const float* data = outputs[o].GetTensorData<float>();
    const std::int64_t per_row = shape.at(1) * shape.at(2);  // all-logits exports have S = 1 here too
    for (std::int64_t i = 0; i < n; ++i) {
      std::copy_n(data + batch_index[static_cast<std::size_t>(i)] * per_row + per_row - vocab, vocab, logits.begin() + i * vocab);
    }
  }
  for (KvCache* cache : caches) pool.set_cached(cache->row(), cache->cached_tokens() + 1);
  return logits;
} catch (const Ort::Exception& e) {
  throw Error(session_.path().string() + ": ONNX Runtime: " + e.what());
}

}  // namespace q3vl
