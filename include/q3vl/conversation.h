#pragma once
// A multi-turn conversation on a shared Model. Each turn renders the chat, tokenizes it, runs the
// vision encoder on the turn's images and videos, and feeds the decoder only the tokens its KV
// cache does not already hold, then streams the reply. Creating one loads nothing (microseconds); its memory is
// its KV cache, which grows with the conversation. Thread contract: see q3vl/model.h.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "q3vl/image.h"
#include "q3vl/model.h"
#include "q3vl/sampling.h"
#include "q3vl/video.h"

namespace q3vl {

struct ConversationOptions {
  std::string system_prompt;
  std::int64_t context_length = 0;  // 0: the package's max_length
  // Image token budget per image; unset: the package's. When only one is given and it crosses the
  // package's other bound, that bound follows it (the user's number wins).
  std::optional<std::int64_t> min_image_tokens, max_image_tokens;
  // Images whose vision pass would need more memory than this are refused before it runs.
  // 0: Q3VL_MAX_VISION_MEMORY_MB if set, else 3/4 of physical memory.
  std::uint64_t vision_memory_budget_bytes = 0;
  // Videos: frames sampled per second of the clip, the most frames one clip gives, and one clip's
  // token budget (frames rounded up to pairs x height x width / 2048); unset: the package's
  // video_preprocessor_config.json (HF's defaults: 2 frames per second, 4..768 frames).
  std::optional<double> video_fps;
  std::optional<std::int64_t> max_video_frames;
  std::optional<std::int64_t> min_video_tokens, max_video_tokens;
  // The most prompt tokens one decoder call takes: longer prompts (a video's thousands of tokens)
  // are prefilled in chunks through the KV cache, which bounds attention's scratch memory
  // (chunk x context floats per head). 0: the whole prompt at once.
  std::int64_t prefill_chunk_tokens = 1024;
};

// One image or video of a user turn.
using Media = std::variant<RgbImage, VideoClip>;

struct ReplyOptions {
  std::optional<SamplingOptions> sampling;  // unset: the package's generation_config
  std::int64_t max_new_tokens = 512;
  std::vector<std::string> stop_strings;
};

struct Timings {
  std::int64_t image_tokens = 0;   // of this turn's new images
  std::int64_t video_tokens = 0;   // of this turn's new videos
  std::int64_t video_frames = 0;   // frames sampled from them
  double video_decode_ms = 0;      // decoding, resizing and cutting those frames into patches
  double vision_ms = 0;       // the vision encoder, its loading included on the first image
  double vision_load_ms = 0;  // of which loading vision.onnx (0 once loaded)
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

struct TurnTrace;          // everything one turn computed, for `q3vl run --dump` (internal)
struct ConversationState;  // the sequence: KV cache, positions, history (internal)

class Conversation {
 public:
  // Throws InvalidInput for a system prompt that is not UTF-8 or holds media placeholders.
  explicit Conversation(std::shared_ptr<const Model> model, ConversationOptions options = {});
  ~Conversation();
  Conversation(Conversation&&) noexcept;
  Conversation& operator=(Conversation&&) noexcept;

  // One user turn: `media` (images and videos, in order) then `text`; generates and streams the
  // assistant reply through `on_text` (UTF-8 pieces). A turn that throws leaves the conversation as
  // it was.
  Reply send(const std::vector<Media>& media, const std::string& text, const ReplyOptions& options = {},
             const std::function<void(std::string_view)>& on_text = {}, TurnTrace* trace = nullptr);

  // Forgets every turn (keeps the system prompt and the model).
  void reset();
  std::int64_t turns() const;  // user turns answered so far
  std::int64_t cached_tokens() const;
  std::int64_t context_length() const;
  const Model& model() const;

 private:
  std::unique_ptr<ConversationState> state_;
};

}  // namespace q3vl
