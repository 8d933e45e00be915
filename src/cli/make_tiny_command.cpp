// `q3vl make-tiny`: write a random-weight Qwen3-VL checkpoint in Hugging Face layout.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "model/random_checkpoint.h"
#include "model/dtype.h"
#include "model/tensor_names.h"
#include "util/progress.h"

#ifndef Q3VL_DEFAULT_TOKENIZER_DIR
#define Q3VL_DEFAULT_TOKENIZER_DIR ""
#endif

namespace q3vl::cli {
namespace {

struct MakeTinyArgs {
  std::string preset = "tiny";
  std::string out;
  std::uint64_t seed = 0;
  std::int64_t layers = 0;  // 0: the preset's
  std::string tokenizer_dir;
  bool force = false;
  bool quiet = false;
};

void run_make_tiny(const MakeTinyArgs& args) {
  ModelConfig config = random_checkpoint_config(args.preset);
  if (args.layers > 0) config = with_text_layers(config, args.layers);
  RandomCheckpointOptions options;
  options.seed = args.seed;
  options.tokenizer_dir = args.tokenizer_dir;
  options.overwrite = args.force;
  options.show_progress = !args.quiet;
  const auto start = std::chrono::steady_clock::now();
  write_random_checkpoint(config, args.out, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::uint64_t params = 0;
  for (const TensorSpec& spec : expected_tensors(config)) {
    if (spec.required) params += static_cast<std::uint64_t>(checked_element_count(spec.shape).value());
  }
  if (!args.quiet) {
    std::fprintf(stderr, "wrote %s: preset %s, %.3g M parameters (%s bf16), seed %llu, %.1f s\n",
                 args.out.c_str(), args.preset.c_str(), static_cast<double>(params) / 1e6,
                 format_bytes(params * 2).c_str(), static_cast<unsigned long long>(args.seed), seconds);
  }
}

}  // namespace

void add_make_tiny_command(CLI::App& app) {
  auto args = std::make_shared<MakeTinyArgs>();
  args->tokenizer_dir = Q3VL_DEFAULT_TOKENIZER_DIR;
  if (const char* env = std::getenv("Q3VL_TOKENIZER_DIR")) args->tokenizer_dir = env;
  CLI::App* cmd = app.add_subcommand("make-tiny", "Write a random-weight Qwen3-VL checkpoint (HF layout)");
  std::string presets;
  for (const std::string& name : random_checkpoint_presets()) presets += (presets.empty() ? "" : ", ") + name;
  cmd->add_option("--preset", args->preset, "Model shape: " + presets)
      ->capture_default_str()
      ->check(CLI::IsMember(random_checkpoint_presets()));
  cmd->add_option("--out", args->out, "Output folder")->required();
  cmd->add_option("--layers", args->layers, "Text decoder layers instead of the preset's (e.g. a few layers of 30b-a3b)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  cmd->add_option("--seed", args->seed, "Random seed (0..2^64-1)")->capture_default_str()->check(unsigned_integer());
  cmd->add_option("--tokenizer-dir", args->tokenizer_dir,
                  "Folder with the Qwen tokenizer.json and tokenizer_config.json (env Q3VL_TOKENIZER_DIR)")
      ->capture_default_str();
  cmd->add_flag("--force", args->force, "Replace the output folder if it exists");
  cmd->add_flag("--quiet", args->quiet, "No progress output");
  cmd->callback([args] { run_make_tiny(*args); });
}

}  // namespace q3vl::cli
