#include "engine/conversation.h"

#include <algorithm>

#include "math/rope_index.h"
#include "q3vl/error.h"
#include "engine/sampler.h"
#include "text/stop_strings.h"
#include "util/npy.h"
#include "util/output_dir.h"  // TurnTrace::write

namespace q3vl {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Replaces the k-th single image pad with the k-th image's pad tokens; returns where each
// image's block starts.
std::vector<std::int64_t> expand_image_pads(std::vector<std::int64_t>& ids, const std::vector<ImageInput>& images,
                                            std::int64_t pad, std::vector<std::size_t>& block_starts) {
  std::vector<std::int64_t> out;
  std::size_t image = 0;
  for (std::int64_t id : ids) {
    if (id != pad) {
      out.push_back(id);
      continue;
    }
    if (image >= images.size()) throw InvalidInput("the chat has more image placeholders than images");
    block_starts.push_back(out.size());
    out.insert(out.end(), static_cast<std::size_t>(images[image++].grid.tokens()), pad);
  }
  if (image != images.size()) throw InvalidInput("the chat has fewer image placeholders than images");
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

}  // namespace

Engine::Engine(const std::filesystem::path& package, const EngineOptions& options)
    : package_(Package::open(package)),
      environment_(options.threads, options.verbose),
      tokenizer_(Tokenizer::load(package_.tokenizer_json())),
      embedding_(environment_, package_.embedding_model(), package_.config(), session_options_) {}

VisionEncoder& Engine::vision() {
  // Loaded on first use: a text-only run never pays the seconds a large vision model takes to load.
  if (!vision_) {
    if (!std::filesystem::exists(package_.vision_model())) {
      throw InvalidInput(package_.dir().string() + " has no vision model (built with --only?)");
    }
    vision_.emplace(environment_, package_.vision_model(), package_.config(), session_options_);
  }
  return *vision_;
}

std::unique_ptr<TextDecoder> Engine::new_decoder(std::int64_t context_length) {
  SessionOptions options = session_options_;
  options.prepack_weights = !package_.float_decoder();
  return std::make_unique<TextDecoder>(environment_, package_.text_model(), package_.config(), context_length, options);
}

Conversation::Conversation(Engine& engine, ConversationOptions options)
    : engine_(engine), options_(std::move(options)) {
  if (options_.context_length <= 0) options_.context_length = engine.package().max_length();
  decoder_ = engine.new_decoder(options_.context_length);
  require_valid_utf8(options_.system_prompt, "the system prompt");
  reject_media_placeholders(options_.system_prompt, "the system prompt");
  if (!options_.system_prompt.empty()) messages_.push_back(text_message("system", options_.system_prompt));
}

Reply Conversation::send(const std::vector<RgbImage>& images, const std::string& text, const ReplyOptions& options,
                         const std::function<void(std::string_view)>& on_text, TurnTrace* trace) {
  const std::size_t message_count = messages_.size();
  const std::size_t image_count = images_.size();
  try {
    return send_turn(images, text, options, on_text, trace);
  } catch (...) {
    // A failed turn leaves the conversation as it was; the cache keeps only what was fed.
    messages_.resize(message_count);
    images_.resize(image_count);
    cached_ids_.resize(std::min<std::size_t>(cached_ids_.size(), static_cast<std::size_t>(decoder_->cached_tokens())));
    cached_max_position_.resize(cached_ids_.size());
    decoder_->truncate(static_cast<std::int64_t>(cached_ids_.size()));
    throw;
  }
}

// The vision graph's attention is dense over every patch of the call, so memory grows with the
// square of the patches: refuse before ONNX Runtime asks for the buffer (or the kernel kills us).
void Conversation::check_vision_memory(std::size_t first_image, const std::vector<RgbImage>& turn_images) const {
  std::int64_t patches = 0;
  for (std::size_t i = first_image; i < images_.size(); ++i) patches += images_[i].grid.patches();
  const ModelConfig& config = engine_.config();
  const std::uint64_t budget =
      options_.vision_memory_budget_bytes > 0 ? options_.vision_memory_budget_bytes : default_vision_memory_budget_bytes();
  const std::uint64_t needed = estimate_vision_peak_bytes(config, patches);
  if (needed <= budget) return;
  // The largest per-image token budget that would fit, for the hint.
  const std::int64_t merge = config.vision.spatial_merge_size * config.vision.spatial_merge_size;
  const auto count = static_cast<std::int64_t>(images_.size() - first_image);
  std::int64_t fitting_patches = patches;
  while (fitting_patches > merge && estimate_vision_peak_bytes(config, fitting_patches) > budget) fitting_patches = fitting_patches * 9 / 10;
  const std::int64_t fitting_tokens = std::max<std::int64_t>(1, fitting_patches / merge / std::max<std::int64_t>(count, 1));
  std::string which;
  const std::size_t first_of_turn = images_.size() - turn_images.size();
  for (std::size_t i = first_image; i < images_.size(); ++i) {
    std::string name = "image " + std::to_string(i + 1);
    if (i >= first_of_turn && !turn_images[i - first_of_turn].source.empty()) name = turn_images[i - first_of_turn].source;
    which += (which.empty() ? "" : ", ") + name + " (" + std::to_string(images_[i].grid.patches() / merge) + " tokens)";
  }
  auto megabytes = [](std::uint64_t bytes) { return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MB"; };
  throw InvalidInput(which + ": the vision encoder would need about " + megabytes(needed) + " of memory, more than the " +
                     megabytes(budget) + " allowed (--max-vision-memory-mb or Q3VL_MAX_VISION_MEMORY_MB); use fewer or "
                     "smaller images, e.g. --max-image-tokens " + std::to_string(fitting_tokens));
}

Reply Conversation::send_turn(const std::vector<RgbImage>& images, const std::string& text, const ReplyOptions& options,
                              const std::function<void(std::string_view)>& on_text, TurnTrace* trace) {
  const auto start = Clock::now();
  const ModelConfig& config = engine_.config();
  const Tokenizer& tokenizer = engine_.tokenizer();
  Reply reply;
  Sampler sampler(options.sampling);  // validates the options before any work

  require_valid_utf8(text, "the message text");
  reject_media_placeholders(text, "the message text");
  // 1. The conversation so far plus this turn, as tokens with every image's pads expanded.
  std::vector<ChatContent> content;
  for (const RgbImage& image : images) {
    images_.push_back(preprocess_image(image, config, options_.preprocess));
    content.push_back({ChatContent::Kind::Image, ""});
  }
  if (!text.empty()) content.push_back({ChatContent::Kind::Text, text});
  messages_.push_back(user_message(std::move(content)));
  std::vector<std::int64_t> rendered = tokenizer.encode(render_chat(messages_));
  std::vector<std::size_t> block_starts;
  const std::vector<std::int64_t> ids = expand_image_pads(rendered, images_, config.image_token_id, block_starts);

  // 2. Reuse the cache up to the first difference, never splitting an image block.
  std::size_t keep = 0;
  while (keep < cached_ids_.size() && keep < ids.size() && cached_ids_[keep] == ids[keep]) ++keep;
  if (keep == ids.size()) --keep;  // always feed at least one token to get logits
  std::size_t first_image = 0;
  while (first_image < block_starts.size() &&
         block_starts[first_image] + static_cast<std::size_t>(images_[first_image].grid.tokens()) <= keep) {
    ++first_image;
  }
  if (first_image < block_starts.size() && block_starts[first_image] < keep) keep = block_starts[first_image];
  if (ids.size() > static_cast<std::size_t>(decoder_->context_length())) {
    // Before the vision and embedding passes, whose memory grows with the tokens.
    throw InvalidInput("context overflow: the conversation is " + std::to_string(ids.size()) +
                       " tokens, more than the context length of " + std::to_string(decoder_->context_length()) +
                       " (raise it with --context, or /reset)");
  }
  decoder_->truncate(static_cast<std::int64_t>(keep));
  cached_ids_.resize(keep);
  cached_max_position_.resize(keep);

  // 3. Vision on the images whose blocks are in the new tokens.
  VisualFeatures features;
  std::vector<float> pixels;
  std::vector<GridThw> grids;
  for (std::size_t i = first_image; i < images_.size(); ++i) {
    pixels.insert(pixels.end(), images_[i].pixel_values.begin(), images_[i].pixel_values.end());
    grids.push_back(images_[i].grid);
  }
  if (!grids.empty()) {
    check_vision_memory(first_image, images);
    const auto vision_start = Clock::now();
    features = engine_.vision().encode(pixels, grids);
    reply.timings.vision_ms = ms_since(vision_start);
    reply.timings.image_tokens = features.tokens;
  }

  // 4. Prefill the new tokens at positions continuing from the cache.
  const std::vector<std::int64_t> segment(ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end());
  std::int64_t next_position = 0;
  for (std::int64_t p : cached_max_position_) next_position = std::max(next_position, p + 1);
  const RopePositions positions = rope_positions(segment, grids, config.visual_pads(), next_position);
  std::vector<std::int64_t> position_ids = positions.t;
  position_ids.insert(position_ids.end(), positions.h.begin(), positions.h.end());
  position_ids.insert(position_ids.end(), positions.w.begin(), positions.w.end());
  const auto prefill_start = Clock::now();
  const std::vector<float> embeds = engine_.embedding().embed(segment, grids.empty() ? nullptr : &features);
  DecoderOutput out = decoder_->forward(embeds, position_ids);
  reply.timings.prefill_tokens = static_cast<std::int64_t>(segment.size());
  reply.timings.prefill_ms = ms_since(prefill_start);
  for (std::size_t i = 0; i < segment.size(); ++i) {
    cached_ids_.push_back(segment[i]);
    cached_max_position_.push_back(std::max({positions.t[i], positions.h[i], positions.w[i]}));
  }
  std::int64_t position = positions.next_position;
  const std::int64_t vocab = config.text.vocab_size;
  std::vector<float> logits(out.logits.end() - vocab, out.logits.end());
  if (trace != nullptr) {
    trace->prompt_ids = ids;
    trace->input_ids = segment;
    trace->pixel_values = pixels;
    trace->grids = grids;
    trace->position_ids = position_ids;
    trace->rope_delta = positions.next_position - static_cast<std::int64_t>(ids.size());
    trace->features = features;
    trace->prefill_logits = logits;
  }

  // 5. Decode: sample, stream, stop on EOS, a stop string, the token limit or a full context.
  std::vector<std::int64_t> history = ids;
  TokenStreamDecoder stream(tokenizer, /*skip_special_tokens=*/true);
  StopStringMatcher stops(options.stop_strings);
  const auto& eos = engine_.package().generation_defaults().eos_token_ids;
  auto emit = [&](const std::string& piece) {
    if (piece.empty()) return;
    reply.text += piece;
    if (on_text) on_text(piece);
  };
  const auto decode_start = Clock::now();
  reply.finish_reason = "length";
  for (std::int64_t step = 0; step < options.max_new_tokens; ++step) {
    const std::int64_t token = sampler.next(logits, history);
    if (step == 0) reply.timings.time_to_first_token_ms = ms_since(start);
    if (std::find(eos.begin(), eos.end(), token) != eos.end()) {
      reply.finish_reason = "stop";
      break;
    }
    reply.tokens.push_back(token);
    history.push_back(token);
    emit(stops.push(stream.push(token)));
    if (stops.stopped()) {
      reply.finish_reason = "stop";
      break;
    }
    if (step + 1 == options.max_new_tokens || decoder_->cached_tokens() >= decoder_->context_length()) break;
    const std::vector<std::int64_t> next = {token};
    out = decoder_->forward(engine_.embedding().embed(next, nullptr), std::vector<std::int64_t>{position, position, position});
    cached_ids_.push_back(token);
    cached_max_position_.push_back(position++);
    logits.assign(out.logits.end() - vocab, out.logits.end());
    ++reply.timings.decode_tokens;
  }
  reply.timings.decode_ms = ms_since(decode_start);
  if (!stops.stopped()) emit(stops.push(stream.flush()) + stops.flush());
  messages_.push_back(text_message("assistant", reply.text));
  if (trace != nullptr) trace->output_ids = reply.tokens;
  return reply;
}

void TurnTrace::write(const std::filesystem::path& dir, const ModelConfig& config) const {
  // Staged and swapped in whole: no stale .npy of an earlier dump beside these, no truncated one
  // after a failure, and a folder that is not an earlier dump of ours is never replaced.
  OutputDir out(dir, {.kind = "dump", .option = "--dump", .replace = true, .force_option = "", .inputs = {}});
  const std::filesystem::path& stage = out.begin(WriteMode::Replace);
  const std::int64_t S = static_cast<std::int64_t>(input_ids.size());
  write_npy(stage / "input_ids.npy", std::span<const std::int64_t>(input_ids), {1, S});
  write_npy(stage / "position_ids.npy", std::span<const std::int64_t>(position_ids), {3, 1, S});
  const std::vector<std::int64_t> delta = {rope_delta};
  write_npy(stage / "rope_deltas.npy", std::span<const std::int64_t>(delta), {1, 1});
  write_npy(stage / "logits.npy", std::span<const float>(prefill_logits), {1, static_cast<std::int64_t>(prefill_logits.size())});
  write_npy(stage / "output_ids.npy", std::span<const std::int64_t>(output_ids), {1, static_cast<std::int64_t>(output_ids.size())});
  if (!grids.empty()) {
    const std::int64_t width = config.vision.patch_input_size();
    write_npy(stage / "pixel_values.npy", std::span<const float>(pixel_values),
              {static_cast<std::int64_t>(pixel_values.size()) / width, width});
    std::vector<std::int64_t> thw;
    for (const GridThw& g : grids) thw.insert(thw.end(), {g.t, g.h, g.w});
    write_npy(stage / "image_grid_thw.npy", std::span<const std::int64_t>(thw), {static_cast<std::int64_t>(grids.size()), 3});
    const std::int64_t H = config.text.hidden_size;
    const SplitVisualFeatures split = split_visual_features(features, H);
    write_npy(stage / "image_features.npy", std::span<const float>(split.merged), {features.tokens, H});
    write_npy(stage / "deepstack_features.npy", std::span<const float>(split.deepstack), {split.levels, features.tokens, H});
  }
  out.commit();
}

}  // namespace q3vl
