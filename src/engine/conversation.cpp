#include "q3vl/conversation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/batch_engine.h"
#include "engine/model_data.h"
#include "engine/reply_constraint.h"
#include "engine/tool_calls.h"
#include "engine/turn_trace.h"
#include "math/rope_index.h"
#include "media/image_preprocess.h"
#include "media/video_preprocess.h"
#include "text/chat_format.h"
#include "q3vl/error.h"
#include "engine/sampler.h"
#include "text/reply_parser.h"
#include "text/stop_strings.h"
#include "util/json_fields.h"
#include "util/sha256.h"

namespace q3vl {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

// One image or video of the conversation, preprocessed. A video's pixels are decoded only when
// its turn runs (after the plan says how many tokens it takes).
struct VisualItem {
  bool video = false;
  std::string source;
  GridThw grid;
  std::vector<float> pixel_values;      // [grid.patches(), C*Tp*P*P]; empty until a video is loaded
  VideoPlan plan;                       // videos: sampling, size, timestamps
  std::unique_ptr<FrameSource> frames;  // videos not loaded yet
  Sha256Digest digest{};                // identity of the content (what the cache is matched on)
};

// A span of the KV cache that holds one item's tokens, and which content they came from.
using CachedItem = CachedPrefix::Item;

namespace {

// The rendered chat with each single media pad replaced by its item's tokens: an image's pads, or
// for a video, per frame pair "<t seconds>" + <|vision_start|> + pads + <|vision_end|> (HF's
// processor keeps the template's own vision_start/end around them). Records each item's span.
std::vector<std::int64_t> expand_media_pads(const std::vector<std::int64_t>& ids, const std::vector<VisualItem>& items,
                                            const ModelConfig& config, const Tokenizer& tokenizer,
                                            std::vector<std::pair<std::size_t, std::size_t>>& spans) {
  std::vector<std::int64_t> out;
  std::size_t item = 0;
  for (std::int64_t id : ids) {
    if (id != config.image_token_id && id != config.video_token_id) {
      out.push_back(id);
      continue;
    }
    const bool video = id == config.video_token_id;
    if (item >= items.size() || items[item].video != video) {
      throw InvalidInput(std::string("the chat's ") + (video ? "video" : "image") + " placeholders do not match its media");
    }
    const VisualItem& current = items[item++];
    const std::size_t start = out.size();
    if (!video) {
      out.insert(out.end(), static_cast<std::size_t>(current.grid.tokens()), id);
    } else {
      const std::size_t per_pair = static_cast<std::size_t>(current.grid.h * current.grid.w / 4);
      for (std::int64_t pair = 0; pair < current.grid.t; ++pair) {
        const std::vector<std::int64_t> stamp =
            tokenizer.encode(timestamp_text(current.plan.timestamps[static_cast<std::size_t>(pair)]));
        out.insert(out.end(), stamp.begin(), stamp.end());
        out.push_back(config.vision_start_token_id);
        out.insert(out.end(), per_pair, id);
        out.push_back(config.vision_end_token_id);
      }
    }
    spans.emplace_back(start, out.size());
  }
  if (item != items.size()) throw InvalidInput("the chat has fewer media placeholders than media");
  return out;
}

// HF's processor expands every media pad it finds in the text and fails when they outnumber the
// media; q3vl would otherwise give the image's tokens to the wrong place.
void reject_media_placeholders(const std::string& text, const std::string& what) {
  for (const char* placeholder : {"<|image_pad|>", "<|video_pad|>"}) {
    if (text.find(placeholder) != std::string::npos) {
      throw InvalidInput(what + " contains " + placeholder +
                         ", the placeholder for an image's tokens; it cannot be typed as text (attach images instead)");
    }
  }
}

// A pixel budget with the user's token bounds in place of the package's. HF's smart_resize lets the
// maximum win when min_pixels > max_pixels, but only in one branch (an item below the minimum is
// scaled *up* to it), so when one user bound crosses the package's other bound, that bound follows
// the user's: the user asked for that number. `what` names the bounds ("image", "video").
PreprocessOptions with_token_bounds(PreprocessOptions pixels, std::optional<std::int64_t> min_tokens,
                                    std::optional<std::int64_t> max_tokens, std::int64_t pixels_per_token,
                                    const std::string& what) {
  constexpr std::int64_t kMaxTokens = std::int64_t{1} << 32;
  for (const auto& [value, bound] : {std::pair{min_tokens, "min_"}, std::pair{max_tokens, "max_"}}) {
    if (value && (*value < 1 || *value > kMaxTokens)) {
      throw InvalidInput(bound + what + "_tokens must be between 1 and 2^32, not " + std::to_string(*value));
    }
  }
  if (max_tokens) pixels.max_pixels = *max_tokens * pixels_per_token;
  if (min_tokens) pixels.min_pixels = *min_tokens * pixels_per_token;
  if (pixels.min_pixels > pixels.max_pixels) {
    if (max_tokens && !min_tokens) pixels.min_pixels = pixels.max_pixels;
    if (min_tokens && !max_tokens) pixels.max_pixels = pixels.min_pixels;
  }
  return pixels;
}

// The conversation's video settings: the package's, with the user's in their place. Token bounds
// become the clip's pixel budget (one token per frame pair of 32x32 pixels).
VideoPreprocessOptions resolve_video_preprocess(VideoPreprocessOptions video, const ConversationOptions& options,
                                                std::int64_t pixels_per_token) {
  video.pixels = with_token_bounds(video.pixels, options.min_video_tokens, options.max_video_tokens, pixels_per_token, "video");
  if (options.video_fps && !(*options.video_fps > 0 && *options.video_fps <= 1000)) {
    throw InvalidInput("video fps must be a number in (0, 1000], not " + std::to_string(*options.video_fps));
  }
  if (options.max_video_frames && (*options.max_video_frames < 1 || *options.max_video_frames > 100000)) {
    throw InvalidInput("max video frames must be between 1 and 100000, not " + std::to_string(*options.max_video_frames));
  }
  if (options.video_fps) video.fps = *options.video_fps;
  if (options.max_video_frames) {
    video.max_frames = *options.max_video_frames;
    video.min_frames = std::min(video.min_frames, video.max_frames);
  }
  return video;
}

void hash_grid(Sha256& hash, const GridThw& grid) { hash.update_int(grid.t).update_int(grid.h).update_int(grid.w); }

// An image is its RGB pixels at the size the grid says it is resized to.
Sha256Digest image_digest(const RgbImage& image, const GridThw& grid) {
  Sha256 hash;
  hash.update("image").update_int(image.width).update_int(image.height).update(image.pixels);
  hash_grid(hash, grid);
  return hash.finish();
}

// A clip is its bytes (file, frame files or frames) and which frames at which size were sampled.
Sha256Digest clip_digest(const VideoClip& clip, const VideoPlan& plan) {
  Sha256 hash;
  hash.update("video");
  if (!clip.file.empty()) hash.update_file(clip.file);
  for (const auto& file : clip.frame_files) hash.update_file(file);
  for (const RgbImage& frame : clip.frames) hash.update_int(frame.width).update_int(frame.height).update(frame.pixels);
  hash.update_int(static_cast<std::int64_t>(clip.frames_fps * 1e6));
  for (std::int64_t index : plan.frame_indices) hash.update_int(index);
  hash_grid(hash, plan.grid);
  return hash.finish();
}

}  // namespace

// One sequence on the shared model: its KV cache and what it holds, and the chat so far.
struct ConversationState {
  ConversationState(std::shared_ptr<const Model> shared_model, ConversationOptions options);

  struct TurnTokens {
    std::vector<std::int64_t> ids;           // the whole conversation, media pads expanded
    std::vector<std::pair<std::size_t, std::size_t>> spans;  // each visual item's tokens in `ids`
    std::size_t kept = 0;                    // leading tokens the cache already holds
    std::size_t first_item = 0;              // the first item the vision encoder must see
    std::vector<float> joined_pixels;        // the new items' patches, when there are several
    std::span<const float> pixels;           // all new patches (joined_pixels, or the one item's own)
    std::vector<GridThw> grids;
    // Per item from first_item: its features from the model's shared cache, or null (to encode).
    std::vector<std::shared_ptr<const VisualFeatures>> cached_features;
    VisualFeatures features;
    std::vector<std::int64_t> position_ids;  // [3, new tokens]
    std::int64_t next_position = 0;          // the first generated token's position
    bool opens_reasoning = false;            // the rendered prompt ends inside `<think>`
  };

  // One turn on messages_ and items_ as they now stand, in the steps below: tokenize, reuse the
  // cache, vision, prefill, decode. The callers (send, respond) set the chat up and undo it on failure.
  Reply run_turn(const ReplyOptions& options, const std::function<void(std::string_view)>& on_text, TurnTrace* trace);

  VisualItem make_image_item(const RgbImage& image, const PreprocessOptions& image_pixels) const;
  VisualItem make_video_item(const VideoClip& clip) const;
  TurnTokens tokenize_chat() const;
  void keep_cached_prefix(TurnTokens& turn);
  void load_videos(const TurnTokens& turn, Timings& timings);
  void encode_visuals(TurnTokens& turn, Timings& timings) const;
  std::vector<float> prefill(TurnTokens& turn, const ReplyOptions& options, Timings& timings);
  void decode(const TurnTokens& turn, std::vector<float> logits, const ReplyOptions& options, const JsonSchema* schema,
              const std::vector<ToolDefinition>& tools, const std::function<void(std::string_view)>& on_text,
              Clock::time_point start, Reply& reply);
  void check_vision_memory(const TurnTokens& turn) const;
  void trace_turn(const TurnTokens& turn, const std::vector<float>& logits, TurnTrace& trace) const;
  void truncate_cache(std::size_t keep);
  void adopt_shared_prefix(const TurnTokens& turn);
  void publish_cache() const;
  void reset();
  KvCache make_cache() const;
  DecoderOutput run_decoder(std::span<const float> embeddings, std::span<const std::int64_t> positions);

  std::shared_ptr<const Model> model_;  // keeps data_ alive
  ModelData& data_;
  ConversationOptions options_;
  PreprocessOptions preprocess_;
  VideoPreprocessOptions video_preprocess_;
  BatchEngineState* engine_ = nullptr;  // options_.engine's, or null when alone
  KvCache cache_;
  std::vector<ChatMessage> messages_;
  ChatOptions chat_options_;                      // this turn's template options (its tools)
  std::vector<VisualItem> items_;                 // every image and video of the conversation, in order
  std::vector<std::int64_t> cached_ids_;          // what the cache holds
  std::vector<std::int64_t> cached_max_position_; // per cached token: max of its (T, H, W)
  std::vector<CachedItem> cached_items_;          // the items whose tokens the cache holds
};

ConversationState::ConversationState(std::shared_ptr<const Model> shared_model, ConversationOptions options)
    : model_(std::move(shared_model)),
      data_(model_ ? model_->data() : throw InvalidInput("a conversation needs a loaded model")),
      options_(std::move(options)),
      preprocess_(with_token_bounds(data_.preprocess, options_.min_image_tokens, options_.max_image_tokens,
                                    model_->pixels_per_image_token(), "image")),
      video_preprocess_(resolve_video_preprocess(data_.video_preprocess, options_,
                                                 model_->pixels_per_image_token() * data_.package.config().vision.temporal_patch_size)),
      engine_(options_.engine ? &options_.engine->state() : nullptr),
      cache_(make_cache()) {
  if (options_.prefill_chunk_tokens < 0) {
    throw InvalidInput("prefill_chunk_tokens must be 0 (no chunks) or positive, not " + std::to_string(options_.prefill_chunk_tokens));
  }
  require_valid_utf8(options_.system_prompt, "the system prompt");
  reject_media_placeholders(options_.system_prompt, "the system prompt");
  reset();
}

KvCache ConversationState::make_cache() const {
  if (engine_ == nullptr) {
    return data_.decoder.new_cache(options_.context_length > 0 ? options_.context_length : model_->max_length());
  }
  if (&engine_->data != &data_) throw InvalidInput("the batch engine runs another model than the conversation's");
  if (options_.context_length > engine_->tokens_per_sequence) {
    throw InvalidInput("a context of " + std::to_string(options_.context_length) + " tokens is more than the batch engine gives a sequence (" +
                       std::to_string(engine_->tokens_per_sequence) + ")");
  }
  return engine_->new_cache(options_.context_length > 0 ? options_.context_length : engine_->tokens_per_sequence);
}

// The decoder on the conversation's cache: on the engine's thread when it has one.
DecoderOutput ConversationState::run_decoder(std::span<const float> embeddings, std::span<const std::int64_t> positions) {
  return engine_ != nullptr ? engine_->prefill(cache_, embeddings, positions) : data_.decoder.forward(cache_, embeddings, positions);
}

void ConversationState::reset() {
  messages_.clear();
  items_.clear();
  cached_ids_.clear();
  cached_max_position_.clear();
  cached_items_.clear();
  cache_.reset();
  publish_cache();
  if (!options_.system_prompt.empty()) messages_.push_back(text_message("system", options_.system_prompt));
}

Conversation::Conversation(std::shared_ptr<const Model> model, ConversationOptions options)
    : state_(std::make_unique<ConversationState>(std::move(model), std::move(options))) {}
Conversation::~Conversation() = default;
Conversation::Conversation(Conversation&&) noexcept = default;
Conversation& Conversation::operator=(Conversation&&) noexcept = default;

void Conversation::reset() { state_->reset(); }
std::int64_t Conversation::turns() const {
  return std::count_if(state_->messages_.begin(), state_->messages_.end(),
                       [](const ChatMessage& m) { return m.role == "user"; });
}
std::int64_t Conversation::cached_tokens() const { return state_->cache_.cached_tokens(); }
std::int64_t Conversation::context_length() const { return state_->cache_.context_length(); }
const Model& Conversation::model() const { return *state_->model_; }

namespace {

// Undoes a failed or cancelled turn: the chat as it was, the cache only what was fed completely.
class TurnRollback {
 public:
  explicit TurnRollback(ConversationState& state)
      : state_(state), messages_(state.messages_), item_count_(state.items_.size()) {}
  // For a turn that replaces the items rather than adding to them.
  void save_items() {
    saved_items_ = std::move(state_.items_);
    state_.items_.clear();
    replaced_items_ = true;
  }
  void commit() { committed_ = true; }
  ~TurnRollback() {
    if (committed_) return;
    state_.messages_ = std::move(messages_);
    if (replaced_items_) {
      state_.items_ = std::move(saved_items_);
    } else {
      state_.items_.resize(item_count_);
    }
    state_.truncate_cache(std::min<std::size_t>(state_.cached_ids_.size(), static_cast<std::size_t>(state_.cache_.cached_tokens())));
  }

 private:
  ConversationState& state_;
  std::vector<ChatMessage> messages_;
  std::size_t item_count_;
  std::vector<VisualItem> saved_items_;
  bool replaced_items_ = false;
  bool committed_ = false;
};

}  // namespace

Reply Conversation::send(const std::vector<Media>& media, const std::string& text, const ReplyOptions& options,
                         const std::function<void(std::string_view)>& on_text, TurnTrace* trace) {
  ConversationState& s = *state_;
  if (options.sampling) options.sampling->validate();  // before any work
  TurnRollback rollback(s);
  require_valid_utf8(text, "the message text");
  reject_media_placeholders(text, "the message text");
  const PreprocessOptions image_pixels =
      with_token_bounds(s.preprocess_, options.min_image_tokens, options.max_image_tokens, s.model_->pixels_per_image_token(), "image");
  std::vector<ChatContent> content;
  for (const Media& medium : media) {
    s.items_.push_back(std::holds_alternative<RgbImage>(medium) ? s.make_image_item(std::get<RgbImage>(medium), image_pixels)
                                                                : s.make_video_item(std::get<VideoClip>(medium)));
    content.push_back({s.items_.back().video ? ChatContent::Kind::Video : ChatContent::Kind::Image, ""});
  }
  if (!text.empty()) content.push_back({ChatContent::Kind::Text, text});
  s.messages_.push_back(user_message(std::move(content)));
  Reply reply = s.run_turn(options, on_text, trace);
  rollback.commit();
  return reply;
}

Reply Conversation::respond(const std::vector<Message>& messages, const ReplyOptions& options,
                            const std::function<void(std::string_view)>& on_text, TurnTrace* trace) {
  ConversationState& s = *state_;
  if (options.sampling) options.sampling->validate();
  if (messages.empty()) throw InvalidInput("the chat has no messages");
  if (messages.back().role != "user" && messages.back().role != "tool") {
    throw InvalidInput("the last message must be the user's or a tool result (it is \"" + messages.back().role +
                       "\"): the reply answers it");
  }
  const PreprocessOptions image_pixels =
      with_token_bounds(s.preprocess_, options.min_image_tokens, options.max_image_tokens, s.model_->pixels_per_image_token(), "image");
  TurnRollback rollback(s);
  rollback.save_items();
  std::vector<VisualItem> items;
  std::vector<ChatMessage> chat;
  for (std::size_t m = 0; m < messages.size(); ++m) {
    const Message& message = messages[m];
    const std::string where = "message " + std::to_string(m + 1) + " (" + message.role + ")";
    if (message.role != "system" && message.role != "user" && message.role != "assistant" && message.role != "tool") {
      throw InvalidInput(where + ": unknown role; use system, user, assistant or tool");
    }
    ChatMessage rendered{message.role, {}, {}, {}};
    if (!message.tool_calls.empty() && message.role != "assistant") throw InvalidInput(where + ": only assistant messages make tool calls");
    for (std::size_t c = 0; c < message.tool_calls.size(); ++c) {
      const FunctionCall& call = message.tool_calls[c];
      const std::string call_where = where + ", tool call " + std::to_string(c + 1);
      if (call.name.empty()) throw InvalidInput(call_where + ": the function name is empty");
      require_valid_utf8(call.name, call_where);
      if (!parse_ordered_json_bounded(call.arguments, call_where + " arguments").is_object()) {
        throw InvalidInput(call_where + ": the arguments must be a JSON object");
      }
      // As a string, which the templates write out verbatim: the model's own text comes back unchanged.
      rendered.tool_calls.push_back({call.name, call.arguments, true});
    }
    if (!message.reasoning.empty()) {
      if (message.role != "assistant") throw InvalidInput(where + ": only assistant messages carry reasoning");
      require_valid_utf8(message.reasoning, where + " reasoning");
      reject_media_placeholders(message.reasoning, where + " reasoning");
      rendered.reasoning = message.reasoning;
    }
    for (const MessagePart& part : message.content) {
      if (const std::string* text = std::get_if<std::string>(&part)) {
        require_valid_utf8(*text, where);
        reject_media_placeholders(*text, where);
        rendered.content.push_back(text_content(*text));
        continue;
      }
      if (message.role != "user") throw InvalidInput(where + ": images and videos can only be in user messages");
      items.push_back(std::holds_alternative<RgbImage>(part) ? s.make_image_item(std::get<RgbImage>(part), image_pixels)
                                                             : s.make_video_item(std::get<VideoClip>(part)));
      rendered.content.push_back({items.back().video ? ChatContent::Kind::Video : ChatContent::Kind::Image, ""});
    }
    chat.push_back(std::move(rendered));
  }
  s.messages_ = std::move(chat);
  s.items_ = std::move(items);
  Reply reply = s.run_turn(options, on_text, trace);
  rollback.commit();
  // The next call brings its own copies of the media; the cache holds what these became. A server
  // slot would otherwise keep the last request's patches (up to hundreds of MB) while idle.
  for (VisualItem& item : s.items_) std::vector<float>().swap(item.pixel_values);
  return reply;
}

// Refuse media whose vision pass would not fit the memory budget before anything is decoded or
// ONNX Runtime asks for the buffers (or the kernel kills us).
void ConversationState::check_vision_memory(const TurnTokens& turn) const {
  // Only what the encoder will see: items whose features come from the shared cache cost nothing.
  const std::size_t first_item = turn.first_item;
  std::int64_t patches = 0;
  for (std::size_t i = first_item; i < items_.size(); ++i) {
    if (!turn.cached_features[i - first_item]) patches += items_[i].grid.patches();
  }
  const ModelConfig& config = data_.package.config();
  const std::uint64_t budget =
      options_.vision_memory_budget_bytes > 0 ? options_.vision_memory_budget_bytes : default_vision_memory_budget_bytes();
  const std::uint64_t needed = estimate_vision_peak_bytes(config, patches);
  if (needed <= budget) return;
  // The largest per-item token budget that would fit, for the hint.
  const std::int64_t merge = config.vision.spatial_merge_size * config.vision.spatial_merge_size;
  const auto count = static_cast<std::int64_t>(items_.size() - first_item);
  std::int64_t fitting_patches = patches;
  while (fitting_patches > merge && estimate_vision_peak_bytes(config, fitting_patches) > budget) fitting_patches = fitting_patches * 9 / 10;
  const std::int64_t fitting_tokens = std::max<std::int64_t>(1, fitting_patches / merge / std::max<std::int64_t>(count, 1));
  std::string which;
  bool any_video = false, any_image = false;
  for (std::size_t i = first_item; i < items_.size(); ++i) {
    const VisualItem& item = items_[i];
    (item.video ? any_video : any_image) = true;
    const std::string name = item.source.empty() ? (item.video ? "video " : "image ") + std::to_string(i + 1) : item.source;
    which += (which.empty() ? "" : ", ") + name + " (" + std::to_string(item.grid.tokens()) + " tokens)";
  }
  std::string hint;
  if (any_image) hint += "--max-image-tokens " + std::to_string(fitting_tokens);
  if (any_video) hint += std::string(hint.empty() ? "" : " or ") + "--max-video-tokens " + std::to_string(fitting_tokens);
  auto megabytes = [](std::uint64_t bytes) { return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MB"; };
  throw InvalidInput(which + ": the vision encoder would need about " + megabytes(needed) + " of memory, more than the " +
                     megabytes(budget) + " allowed (--max-vision-memory-mb or Q3VL_MAX_VISION_MEMORY_MB); use fewer or "
                     "smaller images or videos, e.g. " + hint);
}

// 1a. One image (preprocessed now) or video (only planned: its header read, so an over-long clip is
// refused before it is decoded), with the digest of its content.
VisualItem ConversationState::make_image_item(const RgbImage& image, const PreprocessOptions& image_pixels) const {
  ImageInput input = preprocess_image(image, data_.package.config(), image_pixels);
  VisualItem item;
  item.source = image.source;
  item.grid = input.grid;
  item.pixel_values = std::move(input.pixel_values);
  item.digest = image_digest(image, item.grid);
  return item;
}

VisualItem ConversationState::make_video_item(const VideoClip& clip) const {
  VisualItem item;
  item.video = true;
  item.source = clip.source;
  item.frames = open_frame_source(clip);
  item.plan = plan_video(*item.frames, clip.source, data_.package.config(), video_preprocess_);
  item.grid = item.plan.grid;
  item.digest = clip_digest(clip, item.plan);
  return item;
}

// 1b. The chat as tokens, with every item's pads expanded.
ConversationState::TurnTokens ConversationState::tokenize_chat() const {
  const std::string prompt = data_.chat_template.render(messages_, chat_options_);
  const std::vector<std::int64_t> rendered = data_.tokenizer.encode(prompt);
  TurnTokens turn;
  turn.opens_reasoning = prompt.ends_with(std::string(kThinkOpen) + "\n") || prompt.ends_with(kThinkOpen);
  turn.ids = expand_media_pads(rendered, items_, data_.package.config(), data_.tokenizer, turn.spans);
  if (turn.ids.size() > static_cast<std::size_t>(cache_.context_length())) {
    // Before the vision and embedding passes, whose memory grows with the tokens.
    throw InvalidInput("context overflow: the conversation is " + std::to_string(turn.ids.size()) +
                       " tokens, more than the context length of " + std::to_string(cache_.context_length()) +
                       " (raise it with --context, or /reset)");
  }
  return turn;
}

// 2. Keeps the cache up to the first difference, never splitting an item's tokens (a video's
// frame pairs and timestamps included), and only where the cached item had the same content;
// records the first item the vision encoder must see.
void ConversationState::keep_cached_prefix(TurnTokens& turn) {
  if (engine_ != nullptr) adopt_shared_prefix(turn);
  std::size_t keep = 0;
  while (keep < cached_ids_.size() && keep < turn.ids.size() && cached_ids_[keep] == turn.ids[keep]) ++keep;
  if (keep == turn.ids.size()) --keep;  // always feed at least one token to get logits
  std::size_t first_item = 0;
  for (; first_item < turn.spans.size() && turn.spans[first_item].first < keep; ++first_item) {
    // Not a structured binding: clang before 16 cannot capture those in the lambda below.
    const std::size_t start = turn.spans[first_item].first;
    const std::size_t end = turn.spans[first_item].second;
    const bool same = std::any_of(cached_items_.begin(), cached_items_.end(), [&](const CachedItem& cached) {
      return cached.start == start && cached.end == end && cached.digest == items_[first_item].digest;
    });
    if (!same || end > keep) {
      keep = start;
      break;
    }
  }
  truncate_cache(keep);
  turn.kept = keep;
  turn.first_item = first_item;
}

void ConversationState::truncate_cache(std::size_t keep) {
  cache_.truncate(static_cast<std::int64_t>(keep));
  cached_ids_.resize(std::min(cached_ids_.size(), keep));
  cached_max_position_.resize(cached_ids_.size());
  std::erase_if(cached_items_, [&](const CachedItem& item) { return item.end > keep; });
  publish_cache();  // before anything overwrites what was cut
}

// With an engine, another conversation's cache may hold more of this prompt than ours does (the
// same system prompt, image and question): then its keys and values are copied into our row.
void ConversationState::adopt_shared_prefix(const TurnTokens& turn) {
  std::size_t own = 0;
  while (own < cached_ids_.size() && own < turn.ids.size() && cached_ids_[own] == turn.ids[own]) ++own;
  std::vector<CachedItem> items;
  for (std::size_t i = 0; i < turn.spans.size(); ++i) items.push_back({turn.spans[i].first, turn.spans[i].second, items_[i].digest});
  std::optional<CachedPrefix> adopted = engine_->adopt_longer_prefix(cache_, turn.ids, items, own);
  if (!adopted) return;
  cached_ids_ = std::move(adopted->ids);
  cached_max_position_ = std::move(adopted->max_positions);
  cached_items_ = std::move(adopted->items);
}

void ConversationState::publish_cache() const {
  if (engine_ == nullptr) return;
  const auto held = std::min<std::size_t>(cached_ids_.size(), static_cast<std::size_t>(cache_.cached_tokens()));
  CachedPrefix prefix;
  prefix.ids.assign(cached_ids_.begin(), cached_ids_.begin() + static_cast<std::ptrdiff_t>(held));
  prefix.max_positions.assign(cached_max_position_.begin(), cached_max_position_.begin() + static_cast<std::ptrdiff_t>(held));
  for (const CachedItem& item : cached_items_) {
    if (item.end <= held) prefix.items.push_back(item);
  }
  engine_->publish(cache_, std::move(prefix));
}

// 3a. Decodes the videos not loaded yet (this turn's), sampled frames only.
void ConversationState::load_videos(const TurnTokens& turn, Timings& timings) {
  const auto start = Clock::now();
  for (std::size_t i = turn.first_item; i < items_.size(); ++i) {
    VisualItem& item = items_[i];
    if (!item.video || !item.frames || turn.cached_features[i - turn.first_item]) continue;
    item.pixel_values = load_video_pixels(*item.frames, item.plan, data_.package.config(), video_preprocess_.pixels);
    item.frames.reset();  // closes the file
    timings.video_frames += static_cast<std::int64_t>(item.plan.frame_indices.size());
  }
  timings.video_decode_ms = ms_since(start);
}

// 3b. The vision encoder on the items from `first_item` on (their tokens are in the new ones).
void ConversationState::encode_visuals(TurnTokens& turn, Timings& timings) const {
  std::vector<GridThw> to_encode;
  std::size_t misses = 0;
  for (std::size_t i = turn.first_item; i < items_.size(); ++i) misses += turn.cached_features[i - turn.first_item] ? 0 : 1;
  for (std::size_t i = turn.first_item; i < items_.size(); ++i) {
    turn.grids.push_back(items_[i].grid);
    (items_[i].video ? timings.video_tokens : timings.image_tokens) += items_[i].grid.tokens();
    if (turn.cached_features[i - turn.first_item]) continue;
    if (items_[i].pixel_values.empty()) {
      throw Error("internal: " + (items_[i].source.empty() ? std::string("an image") : items_[i].source) +
                  " must be encoded again but its pixels were released (send the chat again with respond())");
    }
    // One item (the common case, and a long video's hundreds of megabytes) is used in place.
    if (misses == 1) {
      turn.pixels = items_[i].pixel_values;
    } else {
      turn.joined_pixels.insert(turn.joined_pixels.end(), items_[i].pixel_values.begin(), items_[i].pixel_values.end());
      turn.pixels = turn.joined_pixels;
    }
    to_encode.push_back(items_[i].grid);
  }
  if (turn.grids.empty()) return;
  VisualFeatures encoded;
  if (!to_encode.empty()) {
    const auto vision_start = Clock::now();
    auto encode = [&] {
      const std::shared_ptr<const VisionEncoder> encoder = data_.vision();
      timings.vision_load_ms = ms_since(vision_start);
      encoded = encoder->encode(turn.pixels, to_encode);
      if (data_.release_vision_after_use) data_.release_vision();
    };
    // With an engine, on its thread between decoder steps, so the two never split the cores.
    if (engine_ != nullptr) {
      engine_->exclusive(encode);
    } else {
      encode();
    }
    timings.vision_ms = ms_since(vision_start);
  }
  VisionFeatureCache* cache = data_.vision_cache.get();
  if (cache == nullptr) {
    turn.features = std::move(encoded);
    return;
  }
  // Items in order, each from the cache or its rows of this encoding (which the cache then keeps).
  turn.features = VisualFeatures{};
  std::int64_t row = 0;
  for (std::size_t i = turn.first_item; i < items_.size(); ++i) {
    std::shared_ptr<const VisualFeatures> features = turn.cached_features[i - turn.first_item];
    if (!features) {
      auto own = std::make_shared<VisualFeatures>();
      own->tokens = items_[i].grid.tokens();
      own->width = encoded.width;
      const auto begin = encoded.data.begin() + static_cast<std::ptrdiff_t>(row * encoded.width);
      own->data.assign(begin, begin + static_cast<std::ptrdiff_t>(own->tokens * encoded.width));
      row += own->tokens;
      cache->insert(items_[i].digest, own);
      features = std::move(own);
    }
    turn.features.width = features->width;
    turn.features.tokens += features->tokens;
    turn.features.data.insert(turn.features.data.end(), features->data.begin(), features->data.end());
  }
}

// 4. Prefills the new tokens at positions continuing from the cache; returns the last logits.
std::vector<float> ConversationState::prefill(TurnTokens& turn, const ReplyOptions& options, Timings& timings) {
  const std::vector<std::int64_t> segment(turn.ids.begin() + static_cast<std::ptrdiff_t>(turn.kept), turn.ids.end());
  std::int64_t next_position = 0;
  for (std::int64_t p : cached_max_position_) next_position = std::max(next_position, p + 1);
  const RopePositions positions = rope_positions(segment, turn.grids, data_.package.config().visual_pads(), next_position);
  turn.position_ids = positions.t;
  turn.position_ids.insert(turn.position_ids.end(), positions.h.begin(), positions.h.end());
  turn.position_ids.insert(turn.position_ids.end(), positions.w.begin(), positions.w.end());
  turn.next_position = positions.next_position;
  const auto prefill_start = Clock::now();
  const std::vector<float> embeds = data_.embedding.embed(segment, turn.grids.empty() ? nullptr : &turn.features);
  // In chunks through the cache: attention's scratch grows with chunk x context, so a long video
  // prompt in one call would need gigabytes (12k tokens: ~9 GB on the 2B) for no gain.
  const auto total = static_cast<std::int64_t>(segment.size());
  std::int64_t chunk = options_.prefill_chunk_tokens > 0 ? options_.prefill_chunk_tokens : total;
  // With an engine, chunks small enough that the running sequences keep generating between them.
  if (engine_ != nullptr) chunk = std::min(chunk, engine_->options.prefill_chunk_tokens);
  const std::int64_t width = static_cast<std::int64_t>(embeds.size()) / std::max<std::int64_t>(total, 1);
  DecoderOutput out;
  std::vector<std::int64_t> chunk_positions;
  for (std::int64_t first = 0; first < total; first += chunk) {
    if (options.cancelled && options.cancelled()) throw Cancelled("the reply was cancelled during the prefill");
    const std::int64_t count = std::min(chunk, total - first);
    chunk_positions.clear();
    for (int axis = 0; axis < 3; ++axis) {
      const auto begin = turn.position_ids.begin() + axis * total + first;
      chunk_positions.insert(chunk_positions.end(), begin, begin + count);
    }
    out = run_decoder(std::span<const float>(embeds).subspan(static_cast<std::size_t>(first * width), static_cast<std::size_t>(count * width)),
                      chunk_positions);
  }
  timings.prefill_tokens = static_cast<std::int64_t>(segment.size());
  timings.prefill_ms = ms_since(prefill_start);
  for (std::size_t i = 0; i < segment.size(); ++i) {
    cached_ids_.push_back(segment[i]);
    cached_max_position_.push_back(std::max({positions.t[i], positions.h[i], positions.w[i]}));
  }
  for (std::size_t i = turn.first_item; i < items_.size(); ++i) {
    cached_items_.push_back({turn.spans[i].first, turn.spans[i].second, items_[i].digest});
  }
  publish_cache();
  const std::int64_t vocab = data_.package.config().text.vocab_size;
  return {out.logits.end() - vocab, out.logits.end()};
}

namespace {

// The model's log probabilities (log softmax of the raw logits) of `token` and of the `top` most
// likely tokens, most likely first (ties: lower id first).
TokenChoice token_choice(std::span<const float> logits, std::int64_t token, int top, const Tokenizer& tokenizer) {
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - max);
  const double log_norm = max + std::log(sum);
  auto entry = [&](std::int64_t id) {
    return TokenLogprob{id, tokenizer.bytes_of(id), static_cast<float>(logits[static_cast<std::size_t>(id)] - log_norm)};
  };
  TokenChoice choice{entry(token), {}};
  if (top > 0) {
    std::vector<std::int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    const auto count = std::min<std::size_t>(static_cast<std::size_t>(top), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(count), ids.end(), [&](std::int32_t a, std::int32_t b) {
      const float la = logits[static_cast<std::size_t>(a)], lb = logits[static_cast<std::size_t>(b)];
      return la > lb || (la == lb && a < b);
    });
    for (std::size_t i = 0; i < count; ++i) choice.top.push_back(entry(ids[i]));
  }
  return choice;
}

}  // namespace


namespace {

// Reply::content/reasoning/tool_calls filled as the parser classifies the text, each piece passed
// on to ReplyOptions::on_delta.
class ReplySections {
 public:
  ReplySections(ReplyParser::Options options, Reply& reply, const std::function<void(const ReplyDelta&)>& on_delta)
      : parser_(options), reply_(reply), on_delta_(on_delta) {}

  void push(std::string_view text) {
    parser_.push(text, pieces_);
    deliver();
  }
  void finish() {
    parser_.finish(pieces_);
    deliver();
  }

 private:
  void deliver() {
    for (ReplyPiece& piece : pieces_) {
      ReplyDelta delta;
      switch (piece.kind) {
        case ReplyPiece::Kind::Reasoning:
          reply_.reasoning += piece.text;
          delta = {ReplyDelta::Kind::Reasoning, piece.text, nullptr, 0};
          break;
        case ReplyPiece::Kind::Content:
          reply_.content += piece.text;
          delta = {ReplyDelta::Kind::Content, piece.text, nullptr, 0};
          break;
        case ReplyPiece::Kind::ToolCall:
          reply_.tool_calls.push_back({new_tool_call_id(), std::move(piece.call.name), std::move(piece.call.arguments)});
          delta = {ReplyDelta::Kind::ToolCall, {}, &reply_.tool_calls.back(), reply_.tool_calls.size() - 1};
          break;
      }
      if (on_delta_) on_delta_(delta);
    }
    pieces_.clear();
  }

  ReplyParser parser_;
  Reply& reply_;
  const std::function<void(const ReplyDelta&)>& on_delta_;
  std::vector<ReplyPiece> pieces_;
};

}  // namespace

// 5. Decodes: samples, streams, stops on EOS, a stop string, the token limit or a full context.
void ConversationState::decode(const TurnTokens& turn, std::vector<float> logits, const ReplyOptions& options,
                               const JsonSchema* schema, const std::vector<ToolDefinition>& tools,
                               const std::function<void(std::string_view)>& on_text, Clock::time_point start, Reply& reply) {
  Sampler sampler(options.sampling.value_or(data_.package.generation_defaults().sampling));
  std::vector<std::int64_t> history = turn.ids;
  TokenStreamDecoder stream(data_.tokenizer, /*skip_special_tokens=*/true);
  StopStringMatcher stops(options.stop_strings);
  const auto& eos = data_.package.generation_defaults().eos_token_ids;
  const std::int64_t vocab = data_.package.config().text.vocab_size;
  const bool calls_parsed = !tools.empty() && options.tool_choice.mode != ToolChoice::Mode::None;
  const bool call_forced = options.tool_choice.mode == ToolChoice::Mode::Required || options.tool_choice.mode == ToolChoice::Mode::Function;
  ReplySections sections({.starts_in_reasoning = turn.opens_reasoning,
                          .detects_reasoning = data_.chat_template.source().find(kThinkOpen) != std::string::npos,
                          .parses_tool_calls = calls_parsed},
                         reply, options.on_delta);
  auto emit = [&](const std::string& piece) {
    if (piece.empty()) return;
    reply.text += piece;
    if (on_text) on_text(piece);
    sections.push(piece);
  };
  std::optional<ReplyConstraint> constraint;
  if (schema != nullptr) {
    ReplyConstraint::Framing framing{.starts_in_reasoning = turn.opens_reasoning, .before = {}, .after = {}};
    if (call_forced) {
      framing.before = tool_call_opening();
      framing.after = tool_call_closing();
    }
    constraint.emplace(*schema, data_.json_token_mask(), data_.tokenizer, eos, std::move(framing));
    const std::int64_t shortest = constraint->minimum_tokens();
    const std::int64_t room = std::min(options.max_new_tokens, cache_.context_length() - cache_.cached_tokens() + 1);
    if (shortest > room) {
      throw InvalidInput(std::string("the shortest ") + (call_forced ? "tool call" : "JSON document the schema allows") + " takes " +
                         std::to_string(shortest) + " tokens, more than the " + std::to_string(room) +
                         " this reply may have (raise max_tokens)");
    }
  }
  std::int64_t position = turn.next_position;
  // The engine's steps wait for this sequence's tokens while it generates.
  std::optional<BatchEngineState::Generating> generating;
  if (engine_ != nullptr) generating.emplace(*engine_);
  const auto decode_start = Clock::now();
  reply.finish_reason = "length";
  for (std::int64_t step = 0; step < options.max_new_tokens; ++step) {
    if (options.cancelled && options.cancelled()) throw Cancelled("the reply was cancelled after " + std::to_string(step) + " tokens");
    const std::int64_t left = std::min(options.max_new_tokens - step, cache_.context_length() - cache_.cached_tokens() + 1);
    const std::int64_t token = constraint ? constraint->next(logits, left, sampler, history, reply.tokens.size())
                                          : sampler.next(logits, history, reply.tokens.size());
    if (step == 0) reply.timings.time_to_first_token_ms = ms_since(start);
    if (std::find(eos.begin(), eos.end(), token) != eos.end()) {
      reply.finish_reason = "stop";
      break;
    }
    if (constraint) constraint->take(token);
    reply.tokens.push_back(token);
    history.push_back(token);
    if (options.top_logprobs >= 0) {
      reply.logprobs.push_back(token_choice(logits, token, options.top_logprobs, data_.tokenizer));
      if (options.on_token) options.on_token(reply.logprobs.back());
    }
    emit(stops.push(stream.push(token)));
    if (stops.stopped()) {
      reply.finish_reason = "stop";
      break;
    }
    if (step + 1 == options.max_new_tokens || cache_.cached_tokens() >= cache_.context_length()) break;
    const std::vector<std::int64_t> next = {token};
    const std::vector<float> embedding = data_.embedding.embed(next, nullptr);
    if (engine_ != nullptr) {
      logits = engine_->step(cache_, embedding, {position, position, position});
    } else {
      const DecoderOutput out = data_.decoder.forward(cache_, embedding, std::vector<std::int64_t>{position, position, position});
      logits.assign(out.logits.end() - vocab, out.logits.end());
    }
    cached_ids_.push_back(token);
    cached_max_position_.push_back(position++);
    ++reply.timings.decode_tokens;
  }
  reply.timings.decode_ms = ms_since(decode_start);
  if (!stops.stopped()) emit(stops.push(stream.flush()) + stops.flush());
  sections.finish();
  // A call completed by force as the token budget ran out is still a whole call.
  const bool constraint_done = constraint && constraint->finished();
  if (!reply.tool_calls.empty() && (reply.finish_reason == "stop" || constraint_done)) reply.finish_reason = "tool_calls";
}

// Everything the turn computed, for `q3vl run --dump`: images and videos apart, as HF names them.
void ConversationState::trace_turn(const TurnTokens& turn, const std::vector<float>& logits, TurnTrace& trace) const {
  trace.prompt_ids = turn.ids;
  trace.input_ids.assign(turn.ids.begin() + static_cast<std::ptrdiff_t>(turn.kept), turn.ids.end());
  trace.pixel_values.assign(turn.pixels.begin(), turn.pixels.end());
  trace.grids = turn.grids;
  trace.position_ids = turn.position_ids;
  trace.rope_delta = turn.next_position - static_cast<std::int64_t>(turn.ids.size());
  trace.features = turn.features;
  trace.prefill_logits = logits;
  trace.is_video.clear();
  trace.frame_indices.clear();
  trace.timestamps.clear();
  for (std::size_t i = turn.first_item; i < items_.size(); ++i) {
    const VisualItem& item = items_[i];
    trace.is_video.push_back(item.video);
    if (!item.video) continue;
    trace.frame_indices.insert(trace.frame_indices.end(), item.plan.frame_indices.begin(), item.plan.frame_indices.end());
    trace.timestamps.insert(trace.timestamps.end(), item.plan.timestamps.begin(), item.plan.timestamps.end());
  }
}

namespace {

nlohmann::ordered_json parse_schema(const std::string& text) {
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw InvalidInput(std::string("the JSON schema is not valid JSON: ") + e.what());
  }
}

// What the reply is held to: response_format's document, or the one tool call tool_choice asks for.
std::optional<JsonSchema> reply_schema(const ReplyOptions& options, const std::vector<ToolDefinition>& tools) {
  const bool call_forced = options.tool_choice.mode == ToolChoice::Mode::Required || options.tool_choice.mode == ToolChoice::Mode::Function;
  if (call_forced) {
    if (options.response_format.kind != ResponseFormat::Kind::Text) {
      throw InvalidInput("response_format and a required tool call cannot both hold the reply: ask for one of them");
    }
    try {
      return JsonSchema::compile(tool_call_schema(tools, options.tool_choice));
    } catch (const InvalidInput& e) {
      throw InvalidInput(std::string("tool_choice: the tool's parameters cannot constrain the call: ") + e.what());
    }
  }
  switch (options.response_format.kind) {
    case ResponseFormat::Kind::Text: return std::nullopt;
    case ResponseFormat::Kind::JsonObject: return JsonSchema::any_object();
    case ResponseFormat::Kind::JsonSchema: break;
  }
  return JsonSchema::compile(parse_schema(options.response_format.schema));
}

}  // namespace

Reply ConversationState::run_turn(const ReplyOptions& options, const std::function<void(std::string_view)>& on_text,
                                  TurnTrace* trace) {
  const auto start = Clock::now();
  if (options.top_logprobs < -1 || options.top_logprobs > 20) {
    throw InvalidInput("top_logprobs must be between 0 and 20 (or -1: none), not " + std::to_string(options.top_logprobs));
  }
  // Refused before any work.
  const std::vector<ToolDefinition> tools = read_tool_definitions(options.tools, options.tool_choice);
  const std::optional<JsonSchema> schema = reply_schema(options, tools);
  chat_options_.extra_variables_json = options.template_variables;
  chat_options_.tools_json.clear();
  for (const ToolDefinition& tool : tools) chat_options_.tools_json.push_back(tool.as_template_sees_it);
  Reply reply;
  TurnTokens turn = tokenize_chat();
  keep_cached_prefix(turn);
  for (std::size_t i = turn.first_item; i < items_.size(); ++i) {
    turn.cached_features.push_back(data_.vision_cache ? data_.vision_cache->find(items_[i].digest) : nullptr);
  }
  check_vision_memory(turn);
  reply.prompt_tokens = static_cast<std::int64_t>(turn.ids.size());
  reply.cached_tokens = static_cast<std::int64_t>(turn.kept);
  if (options.on_prompt_ready) options.on_prompt_ready(reply.prompt_tokens, reply.cached_tokens);
  if (options.cancelled && options.cancelled()) throw Cancelled("the reply was cancelled before the vision encoder");
  load_videos(turn, reply.timings);
  encode_visuals(turn, reply.timings);
  const std::vector<float> logits = prefill(turn, options, reply.timings);
  if (trace != nullptr) trace_turn(turn, logits, *trace);
  decode(turn, logits, options, schema ? &*schema : nullptr, tools, on_text, start, reply);
  publish_cache();
  messages_.push_back(text_message("assistant", reply.text));
  if (trace != nullptr) trace->output_ids = reply.tokens;
  return reply;
}

}  // namespace q3vl
