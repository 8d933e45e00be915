#pragma once
// What a loaded package holds, behind q3vl::Model: the package's configs, the tokenizer, one
// ONNX Runtime environment and the three model sessions. Shared by every conversation; nothing
// here changes after load except the vision encoder, created once on first use under a lock.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>

#include "engine/json_token_mask.h"
#include "engine/text_models.h"
#include "engine/vision_cache.h"
#include "engine/vision_encoder.h"
#include "package/kernel_graphs.h"
#include "model/preprocessor_config.h"
#include "ort/onnx_session.h"
#include "package/package.h"
#include "package/prepacked_text.h"
#include "q3vl/model.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace q3vl {

struct ModelData {
  ModelData(const std::filesystem::path& dir, const ModelOptions& options);

  // Loaded on first use: a text-only user never pays the seconds a large vision model takes to
  // load. Throws InvalidInput if the package has none (built with --only). Thread-safe.
  std::shared_ptr<const VisionEncoder> vision();
  // Drops the loaded encoder (callers still holding it keep it until they are done).
  void release_vision();
  // The vocabulary's trie for JSON-constrained replies, built on first use. Thread-safe.
  const JsonTokenMask& json_token_mask();

  std::atomic<std::int64_t> sessions_created{0};  // before the sessions: they count themselves here
  Package package;
  PreprocessOptions preprocess;  // the package's preprocessor_config
  VideoPreprocessOptions video_preprocess;  // and video_preprocessor_config
  bool prepack_vision;  // ModelOptions::prepack_vision
  bool release_vision_after_use;  // ModelOptions::release_vision_after_use
  OnnxEnvironment environment;
  SessionOptions session_options;
  std::unique_ptr<VisionFeatureCache> vision_cache;  // null when ModelOptions::vision_cache_bytes is 0
  // text.onnx, or the decoder `q3vl prepack` made for this CPU (before `decoder`, which loads it).
  TextModelChoice text_model;
  VisionModelChoice vision_model;  // vision.onnx, or vision.kernels.onnx (package/kernel_graphs.h)

 private:
  std::unique_ptr<VisionEncoder> load_vision();

  // Declared here so that they start before the text models load and, destroyed after them, wait
  // for their threads before what those use goes away.
  std::future<std::unique_ptr<VisionEncoder>> vision_preload_;
  std::future<Tokenizer> tokenizer_load_;

 public:
  EmbeddingModel embedding;
  DecoderModel decoder;
  Tokenizer tokenizer;
  // The package's tokenizer_config.json template (the reference one renders natively).
  ChatTemplate chat_template;

 private:
  std::mutex vision_mutex_;
  std::shared_ptr<const VisionEncoder> vision_;
  std::once_flag json_mask_once_;
  std::unique_ptr<JsonTokenMask> json_mask_;
};

}  // namespace q3vl
