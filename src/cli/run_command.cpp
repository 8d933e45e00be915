// `q3vl run`: one user turn (images in the order given, then the prompt), the reply streamed.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
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
  if (args.prompt.empty() && args.images.empty() && args.prompt_file.empty()) {
    throw CLI::ValidationError("--prompt", "empty, and there is no --image: nothing to ask");
  }
  // Decoded images are held until the turn runs: bound their sum like the vision pass, so that many
  // large --image files are refused instead of exhausting memory.
  const std::uint64_t budget = args.flags.max_vision_memory_mb
                                   ? static_cast<std::uint64_t>(*args.flags.max_vision_memory_mb) << 20
                                   : default_vision_memory_budget_bytes();
  std::vector<RgbImage> images;
  std::uint64_t decoded_bytes = 0;
  for (const std::string& path : args.images) {
    images.push_back(decode_image_file(path));
    decoded_bytes += images.back().pixels.size();
    if (decoded_bytes > budget) {
      throw InvalidInput("--image " + path + ": the " + std::to_string(images.size()) + " images so far take " +
                         std::to_string(decoded_bytes >> 20) + " MB decoded, more than the " + std::to_string(budget >> 20) +
                         " MB allowed for images (--max-vision-memory-mb or Q3VL_MAX_VISION_MEMORY_MB)");
    }
  }
  const std::shared_ptr<const Model> model = Model::load(args.flags.model, args.flags.model_options(!images.empty()));
  const double load_ms = ms_since_process_start();
  Conversation conversation(model, args.flags.conversation_options(*model));
  TurnTrace trace;
  const Reply reply = conversation.send(images, args.prompt, args.flags.reply_options(*model), write_reply,
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
  cmd->add_option("--image", args->images, "Image file (repeatable; JPEG, PNG, WebP, BMP, GIF)");
  CLI::Option* prompt = cmd->add_option("--prompt", args->prompt, "The user's text");
  CLI::Option* prompt_file =
      cmd->add_option("--prompt-file", args->prompt_file, "The user's text from a file (-: standard input; for long prompts)");
  prompt->excludes(prompt_file);
  cmd->add_option("--dump", args->dump, "Write input_ids, pixel_values, positions, features, logits... as .npy here");
  cmd->callback([args, prompt, prompt_file] {
    if (prompt->count() == 0 && prompt_file->count() == 0) {
      throw CLI::RequiredError("--prompt or --prompt-file");
    }
    run(*args);
  });
}

}  // namespace q3vl::cli
