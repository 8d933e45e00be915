#pragma once
// The end-to-end runtime: a loaded package (Engine) and multi-turn conversations on it. Each turn
// renders the chat, tokenizes it, runs the vision encoder on the turn's images, and feeds the
// decoder only the tokens its KV cache does not already hold, then streams the reply.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "text/chat_format.h"
#include "media/image.h"
#include "media/image_preprocess.h"
#include "package/package.h"
#include "engine/text_models.h"
#include "text/tokenizer.h"
#include "engine/vision_encoder.h"

namespace q3vl {

struct EngineOptions {
  int threads = 0;  // 0: ONNX Runtime's default
  bool verbose = false;  // ONNX Runtime's warnings too, not only its fatal errors
};

class Engine {
 public:
  Engine(const std::filesystem::path& package, const EngineOptions& options = {});

  const Package& package() const { return package_; }
  const ModelConfig& config() const { return package_.config(); }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  VisionEncoder& vision();  // throws if the package has no vision model
  EmbeddingModel& embedding() { return embedding_; }
  std::unique_ptr<TextDecoder> new_decoder(std::int64_t context_length);

 private:
  Package package_;
  OnnxEnvironment environment_;
  SessionOptions session_options_;
  Tokenizer tokenizer_;
  std::optional<VisionEncoder> vision_;
  EmbeddingModel embedding_;
};

struct ReplyOptions {
  SamplingOptions sampling;
  std::int64_t max_new_tokens = 512;
  std::vector<std::string> stop_strings;
};

struct Timings {
  std::int64_t image_tokens = 0;
  double vision_ms = 0;
  std::int64_t prefill_tokens = 0;
  double prefill_ms = 0;
  double time_to_first_token_ms = 0;
  std::int64_t decode_tokens = 0;
  double decode_ms = 0;
};

struct Reply {
  std::string text;
  std::vector<std::int64_t> tokens;
  std::string finish_reason;  // "stop" (EOS or stop string) or "length" (token or context limit)
  Timings timings;
};

// Everything one turn computed, for `q3vl run --dump` (compare with another implementation).
struct TurnTrace {
  std::vector<std::int64_t> prompt_ids;      // the whole conversation's tokens for this turn
  std::vector<std::int64_t> input_ids;       // the tokens fed in this turn's prefill (after the cache)
  std::vector<float> pixel_values;           // [patches, C*Tp*P*P]
  std::vector<GridThw> grids;
  std::vector<std::int64_t> position_ids;    // [3, S]
  std::int64_t rope_delta = 0;
  VisualFeatures features;                   // [tokens, (1+K)H]
  std::vector<float> prefill_logits;         // last position [V]
  std::vector<std::int64_t> output_ids;
  void write(const std::filesystem::path& dir, const ModelConfig& config) const;
};

struct ConversationOptions {
  std::string system_prompt;
  std::int64_t context_length = 0;  // 0: the package's max_length
  PreprocessOptions preprocess;     // image pixel budget
  // Images whose vision pass would need more memory than this are refused before it runs.
  // 0: default_vision_memory_budget_bytes() (Q3VL_MAX_VISION_MEMORY_MB or 3/4 of physical memory).
  std::uint64_t vision_memory_budget_bytes = 0;
};

class Conversation {
 public:
  Conversation(Engine& engine, ConversationOptions options);

  // One user turn: `images` (in order) then `text`; generates and streams the assistant reply.
  Reply send(const std::vector<RgbImage>& images, const std::string& text, const ReplyOptions& options,
             const std::function<void(std::string_view)>& on_text, TurnTrace* trace = nullptr);

  std::int64_t cached_tokens() const { return decoder_->cached_tokens(); }
  const std::vector<ChatMessage>& messages() const { return messages_; }

 private:
  Reply send_turn(const std::vector<RgbImage>& images, const std::string& text, const ReplyOptions& options,
                  const std::function<void(std::string_view)>& on_text, TurnTrace* trace);

  void check_vision_memory(std::size_t first_image, const std::vector<RgbImage>& turn_images) const;

  Engine& engine_;
  ConversationOptions options_;
  std::unique_ptr<TextDecoder> decoder_;
  std::vector<ChatMessage> messages_;
  std::vector<ImageInput> images_;                // every image of the conversation, in order
  std::vector<std::int64_t> cached_ids_;          // what the decoder's cache holds
  std::vector<std::int64_t> cached_max_position_; // per cached token: max of its (T, H, W)
};

}  // namespace q3vl
