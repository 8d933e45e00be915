// `q3vl run`: one user turn (images in the order given, then the prompt), the reply streamed.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/generation_flags.h"

namespace q3vl::cli {
namespace {

struct RunArgs {
  GenerationFlags flags;
  std::vector<std::string> images;
  std::string prompt;
  std::string dump;
};

void run(const RunArgs& args) {
  std::vector<RgbImage> images;
  for (const std::string& path : args.images) images.push_back(decode_image_file(path));
  Engine engine(args.flags.model, EngineOptions{args.flags.threads});
  Conversation conversation(engine, args.flags.conversation_options(engine));
  TurnTrace trace;
  const Reply reply = conversation.send(
      images, args.prompt, args.flags.reply_options(engine),
      [](std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      },
      args.dump.empty() ? nullptr : &trace);
  std::fputc('\n', stdout);
  std::fflush(stdout);  // the reply before the timing line on stderr
  if (!args.dump.empty()) trace.write(args.dump, engine.config());
  if (args.flags.verbose) std::fprintf(stderr, "%s | finish: %s\n", timing_line(reply.timings).c_str(), reply.finish_reason.c_str());
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Answer one prompt (with images) and stream the reply");
  args->flags.add_to(*cmd);
  cmd->add_option("--image", args->images, "Image file (repeatable; JPEG, PNG, WebP, BMP, GIF)");
  cmd->add_option("--prompt", args->prompt, "The user's text")->required();
  cmd->add_option("--dump", args->dump, "Write input_ids, pixel_values, positions, features, logits... as .npy here");
  cmd->callback([args] { run(*args); });
}

}  // namespace q3vl::cli
