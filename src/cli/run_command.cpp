// `q3vl run`: one user turn (images and videos in the order given on the command line, then the
// prompt), the reply streamed.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "cli/generation_flags.h"
#include "cli/process_clock.h"
#include "cli/reply_output.h"
#include "engine/model_data.h"
#include "engine/turn_trace.h"
#include "q3vl/error.h"
#include "server/chat_request.h"
#include "server/engine_request.h"
#include "server/media_source.h"
#include "util/json_fields.h"

namespace q3vl::cli {
namespace {

struct RunArgs {
  GenerationFlags flags;
  std::vector<std::string> images;
  std::vector<std::string> videos;
  std::vector<std::string> frame_folders;
  std::optional<double> frames_fps;
  // The media options in command-line order (CLI11's parse order), to interleave them.
  std::vector<const CLI::Option*> media_order;
  CLI::Option* image_option = nullptr;
  CLI::Option* video_option = nullptr;
  CLI::Option* frames_option = nullptr;
  std::string prompt;
  std::string prompt_file;
  std::string messages_file;
  bool reply_json = false;
  std::string dump;
};

// --messages: the whole chat as OpenAI's messages list, read and checked as the server reads a
// request's (text, images and videos as local paths next to the file or data URLs, assistant
// tool calls and reasoning, tool results).
std::vector<Message> read_chat_file(const std::string& path, server::RequestScratch& scratch) {
  // Parsed before it becomes a request body, so the file can only ever be the messages list.
  const nlohmann::ordered_json messages = parse_ordered_json_bounded(read_text_file("--messages", path), "--messages " + path);
  if (!messages.is_array()) throw InvalidInput("--messages " + path + ": expected a JSON list of messages, got " + json_type_name(messages));
  server::ChatRequest request;
  try {
    request = server::parse_chat_request(nlohmann::ordered_json{{"messages", messages}}.dump());
  } catch (const server::ApiError& e) {
    throw InvalidInput("--messages " + path + ": " + e.what());
  }
  server::MediaPolicy policy;
  policy.allowed_media_dir = std::filesystem::absolute(path).parent_path();
  policy.scratch_dir = std::filesystem::temp_directory_path();
  try {
    return server::resolve_messages(request, policy, scratch);
  } catch (const server::ApiError& e) {
    throw InvalidInput("--messages " + path + ": " + e.what());
  }
}

// The reply as the assistant message of OpenAI's API, to append to a --messages chat.
std::string reply_message_json(const Reply& reply) {
  nlohmann::ordered_json message = {{"role", "assistant"}, {"content", reply.content}};
  if (!reply.reasoning.empty()) message["reasoning_content"] = reply.reasoning;
  if (!reply.tool_calls.empty()) {
    nlohmann::ordered_json calls = nlohmann::ordered_json::array();
    for (const FunctionCall& call : reply.tool_calls) {
      calls.push_back({{"id", call.id}, {"type", "function"}, {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
    }
    message["tool_calls"] = std::move(calls);
  }
  message["finish_reason"] = reply.finish_reason;
  return message.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

void run(RunArgs& args) {
  args.flags.finish();
  if (args.prompt_file.empty()) {
    require_command_line_utf8(args.prompt, "--prompt");
  } else {
    args.prompt = read_text_file("--prompt-file", args.prompt_file);
    require_valid_utf8(args.prompt, "--prompt-file " + args.prompt_file);
  }
  server::RequestScratch scratch;
  std::vector<Message> chat;
  if (!args.messages_file.empty()) chat = read_chat_file(args.messages_file, scratch);
  const bool any_media = !args.images.empty() || !args.videos.empty() || !args.frame_folders.empty() ||
                         std::ranges::any_of(chat, [](const Message& m) {
                           return std::ranges::any_of(m.content, [](const MessagePart& p) { return !std::holds_alternative<std::string>(p); });
                         });
  if (args.messages_file.empty() && args.prompt.empty() && !any_media && args.prompt_file.empty()) {
    throw CLI::ValidationError("--prompt", "empty, and there is no --image or --video: nothing to ask");
  }
  // Decoded images are held until the turn runs: bound their sum like the vision pass, so that many
  // large --image files are refused instead of exhausting memory.
  const std::uint64_t budget = args.flags.max_vision_memory_mb
                                   ? static_cast<std::uint64_t>(*args.flags.max_vision_memory_mb) << 20
                                   : default_vision_memory_budget_bytes();
  // Images are decoded now (a bad one fails before the model loads); videos are decoded in the
  // turn, sampled frames only.
  std::vector<Media> media;
  std::uint64_t decoded_bytes = 0;
  std::size_t next_image = 0, next_video = 0, next_frames = 0, image_count = 0;
  for (const CLI::Option* option : args.media_order) {
    if (option == args.image_option) {
      const std::string& path = args.images.at(next_image++);
      media.emplace_back(decode_image_file(path));
      ++image_count;
      decoded_bytes += std::get<RgbImage>(media.back()).pixels.size();
      if (decoded_bytes > budget) {
        throw InvalidInput("--image " + path + ": the " + std::to_string(image_count) + " images so far take " +
                           std::to_string(decoded_bytes >> 20) + " MB decoded, more than the " + std::to_string(budget >> 20) +
                           " MB allowed for images (--max-vision-memory-mb or Q3VL_MAX_VISION_MEMORY_MB)");
      }
    } else if (option == args.video_option) {
      media.emplace_back(VideoClip::from_file(args.videos.at(next_video++)));
    } else if (option == args.frames_option) {
      media.emplace_back(VideoClip::from_frame_folder(args.frame_folders.at(next_frames++), *args.frames_fps));
    }
  }
  ModelOptions model_options = args.flags.model_options(any_media);
  // One request: repacking the vision weights would cost more than it saves, and they need not
  // stay resident while the reply is decoded.
  model_options.prepack_vision = false;
  model_options.release_vision_after_use = true;
  const std::shared_ptr<const Model> model = Model::load(args.flags.model, model_options);
  const double load_ms = ms_since_process_start();
  if (args.flags.verbose && !model->text_model_note().empty()) std::fprintf(stderr, "%s\n", model->text_model_note().c_str());
  if (args.flags.verbose && !model->vision_model_note().empty()) std::fprintf(stderr, "%s\n", model->vision_model_note().c_str());
  Conversation conversation(model, args.flags.conversation_options(*model));
  TurnTrace trace;
  ReplyOptions options = args.flags.reply_options(*model);
  ReplyPrinter printer(args.flags.hide_thinking);
  if (!args.reply_json) options.on_delta = std::ref(printer);
  TurnTrace* dump = args.dump.empty() ? nullptr : &trace;
  const Reply reply = chat.empty() ? conversation.send(media, args.prompt, options, {}, dump) : conversation.respond(chat, options, {}, dump);
  write_reply(args.reply_json ? reply_message_json(reply) : "\n");  // the reply before the timing line on stderr
  if (!args.dump.empty()) trace.write(args.dump, model->data().package.config());
  if (args.flags.verbose) std::fprintf(stderr, "%s | finish: %s\n", timing_line(reply.timings, load_ms).c_str(),
                                      reply.finish_reason.c_str());
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Answer one prompt (with images) and stream the reply");
  args->flags.add_to(*cmd);
  args->image_option = cmd->add_option("--image", args->images, "Image file (repeatable; JPEG, PNG, WebP, BMP, GIF)");
  args->video_option = cmd->add_option("--video", args->videos,
                                       "Video file (repeatable; MP4, MOV, MKV, WebM, AVI... with the codecs FFmpeg decodes)");
  args->frames_option = cmd->add_option("--frames", args->frame_folders,
                                        "Folder of frames extracted from a video (image files sorted by name; repeatable)");
  CLI::Option* frames_fps = cmd->add_option("--frames-fps", args->frames_fps, "Frame rate the --frames were extracted at")
                                ->check(finite_range(0, 1e6, true));
  // One value per occurrence, so that the parse order lines up with the values.
  for (CLI::Option* option : {args->image_option, args->video_option, args->frames_option}) option->allow_extra_args(false);
  args->frames_option->needs(frames_fps);
  frames_fps->needs(args->frames_option);
  CLI::Option* prompt = cmd->add_option("--prompt", args->prompt, "The user's text");
  CLI::Option* prompt_file =
      cmd->add_option("--prompt-file", args->prompt_file, "The user's text from a file (-: standard input; for long prompts)");
  prompt->excludes(prompt_file);
  CLI::Option* messages = cmd->add_option("--messages", args->messages_file,
                                          "The whole chat instead of --prompt: a JSON file of OpenAI messages (system, user, "
                                          "assistant with tool_calls, tool results; images as paths next to the file)");
  for (CLI::Option* other : {prompt, prompt_file, args->image_option, args->video_option, args->frames_option}) messages->excludes(other);
  cmd->add_flag("--reply-json", args->reply_json,
                "Print the reply as one OpenAI assistant message (content, reasoning_content, tool_calls, finish_reason) "
                "instead of streaming text");
  cmd->add_option("--dump", args->dump, "Write input_ids, pixel_values, positions, features, logits... as .npy here");
  cmd->callback([args, prompt, prompt_file, messages, cmd] {
    if (prompt->count() == 0 && prompt_file->count() == 0 && messages->count() == 0) {
      throw CLI::RequiredError("--prompt, --prompt-file or --messages");
    }
    if (messages->count() > 0 && !args->flags.system.empty()) {
      throw CLI::ValidationError("--system", "not with --messages: put the system message in the chat");
    }
    args->media_order.clear();
    for (const CLI::Option* option : cmd->parse_order()) {
      if (option == args->image_option || option == args->video_option || option == args->frames_option) {
        args->media_order.push_back(option);
      }
    }
    run(*args);
  });
}

}  // namespace q3vl::cli
