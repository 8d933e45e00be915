#pragma once
// A loaded q3vl package: the model every conversation of a process shares.
//
// Lifetimes and threads:
//  - Model::load reads the package and creates its ONNX Runtime sessions (the text decoder and
//    the embedding model at once, the vision encoder on the first image). That is the only
//    expensive step; load each package once per process.
//  - A Model is immutable after load and thread-safe: any number of Conversations, on any threads,
//    use one Model at the same time. Its first image loads the vision encoder exactly once, under
//    a lock, whichever threads ask first.
//  - Conversations hold the Model by shared_ptr: it lives as long as the last of them.
//  - A Conversation (its KV cache and history) belongs to one thread at a time; use distinct
//    Conversations for concurrent users, never one from two threads at once.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "q3vl/sampling.h"

namespace q3vl {

struct ModelOptions {
  int threads = 0;       // ONNX Runtime's intra-op threads, shared by all sessions; 0: one per core
  bool verbose = false;  // ONNX Runtime's warnings too, not only its fatal errors
  // Start loading the vision encoder on a second thread while the text models load, for callers
  // that know images are coming. Otherwise it loads on the first image, and a text-only user never
  // pays for it. Either way a package without one is only an error when an image arrives.
  bool preload_vision = false;
  // Let ONNX Runtime repack a float vision encoder's weights for this CPU when it loads: ~4 s of
  // one core for the 2B's fp32 encoder, after which each image encodes ~8% faster. Worth it for a
  // process that sees many images (chat, serve); `q3vl run`, which encodes one request, turns it
  // off. Quantized (int8/int4) encoders are always repacked: without it they run ~1.8x slower.
  bool prepack_vision = true;
  // Unload the vision encoder after each use (a call that needs it again loads it again: ~0.1 s
  // without prepacking), so its weights (1.6 GB for the 2B's fp32 encoder) are not resident while
  // the decoder runs. `q3vl run` does; a long-lived process keeps it.
  bool release_vision_after_use = false;
  // Memory for the visual features of recently seen images and videos, shared by all conversations
  // and matched on a SHA-256 of their content, so an image sent again (by any conversation) is not
  // encoded again; least recently used first out. 0: off (each conversation's KV cache still
  // reuses what it holds).
  std::uint64_t vision_cache_bytes = 0;
  // Load the text decoder `q3vl prepack` wrote for this CPU (text.prepacked.onnx) when its stamp
  // matches the package, ONNX Runtime and CPU; text.onnx otherwise. See text_model_note().
  bool prepacked_text = true;
  // int4 packages: run the int4 linear layers and MoE experts with q3vl's own kernels
  // (text.kernels.onnx: int8 activations, the weights read in place from the mapped package)
  // instead of ONNX Runtime's MatMulNBits and QMoE in text.onnx (which repack every weight at load).
  // Quantized vision encoders likewise (vision.kernels.onnx), on x86 CPUs with AVX2 or wider. See
  // text_model_note() and vision_model_note().
  bool q3vl_kernels = true;
};

struct ModelData;  // the loaded sessions, tokenizer and configs (internal)

class Model {
 public:
  // Throws InvalidInput if the folder is not a complete q3vl package, Error if ONNX Runtime cannot
  // load it.
  static std::shared_ptr<const Model> load(const std::filesystem::path& package, const ModelOptions& options = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::filesystem::path& package_dir() const;
  // The package's default context length (genai_config.json search.max_length).
  std::int64_t max_length() const;
  // The package's generation_config.json as sampling options.
  const SamplingOptions& default_sampling() const;
  // The image token budget of the package's preprocessor_config.json (one token per 32x32 pixels).
  std::int64_t min_image_tokens() const;
  std::int64_t max_image_tokens() const;
  // Pixels one image token stands for (patch size times merge size, squared).
  std::int64_t pixels_per_image_token() const;

  // ONNX Runtime sessions this model has created so far: 2 after load, 3 once an image was seen.
  // Conversations never add any (they share these).
  std::int64_t sessions_loaded() const;
  // Which text decoder was loaded and why, when the package has a kernel or prepacked one
  // ("" otherwise): "text decoder: text.prepacked.onnx (...)", "text decoder: text.kernels.onnx
  // (...)" or "text.prepacked.onnx ignored: <reason> (...)".
  const std::string& text_model_note() const;
  // Which vision encoder loads (vision.kernels.onnx or vision.onnx) and why; empty for a plain vision.onnx.
  const std::string& vision_model_note() const;

  ModelData& data() const { return *data_; }  // for the library's own code

 private:
  explicit Model(std::unique_ptr<ModelData> data);
  std::unique_ptr<ModelData> data_;
};

}  // namespace q3vl
