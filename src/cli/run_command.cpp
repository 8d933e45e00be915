// `q3vl run`: one user turn (images and videos in the order given on the command line, then the
// prompt), the reply streamed.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "cli/generation_flags.h"
#include "cli/process_clock.h"
#include "cli/reply_output.h"
#include "engine/model_data.h"
#include "engine/turn_trace.h"
#include "q3vl/error.h"

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
  std::string dump;
};

void run(RunArgs& args) {
  args.flags.finish();
  if (args.prompt_file.empty()) {
    require_command_line_utf8(args.prompt, "--prompt");
  } else {
    args.prompt = read_text_file("--prompt-file", args.prompt_file);
    require_valid_utf8(args.prompt, "--prompt-file " + args.prompt_file);
  }
  const bool any_media = !args.images.empty() || !args.videos.empty() || !args.frame_folders.empty();
  if (args.prompt.empty() && !any_media && args.prompt_file.empty()) {
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
  const std::shared_ptr<const Model> model = Model::load(args.flags.model, args.flags.model_options(any_media));
  const double load_ms = ms_since_process_start();
  Conversation conversation(model, args.flags.conversation_options(*model));
  TurnTrace trace;
  const Reply reply = conversation.send(media, args.prompt, args.flags.reply_options(*model), write_reply,
                                        args.dump.empty() ? nullptr : &trace);
  write_reply("\n");  // the reply before the timing line on stderr
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
  cmd->add_option("--dump", args->dump, "Write input_ids, pixel_values, positions, features, logits... as .npy here");
  cmd->callback([args, prompt, prompt_file, cmd] {
    if (prompt->count() == 0 && prompt_file->count() == 0) {
      throw CLI::RequiredError("--prompt or --prompt-file");
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
