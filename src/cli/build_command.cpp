// `q3vl build`: export a Hugging Face Qwen3-VL checkpoint to a q3vl / onnxruntime-genai package.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "package/format.h"
#include "export/package_writer.h"
#include "util/files.h"
#include "util/progress.h"

namespace q3vl::cli {
namespace {

struct BuildArgs {
  std::string model;
  std::string out;
  std::string only;
  std::string precision = "fp32";
  std::string vision_precision;
  std::int64_t block_size = 32;
  bool asymmetric = false;
  std::int64_t accuracy_level = 4;
  bool float_lm_head = false;
  bool float_embedding = false;
  bool all_logits = false;
  std::int64_t max_length = 8192;
  bool force = false;
  std::string tokenizer_dir;
  std::string chat_template;
  std::string generation_config;
  std::string preprocessor_config;
  std::string video_preprocessor_config;
  bool quiet = false;
};

std::uint64_t folder_bytes(const std::filesystem::path& dir) {
  std::uint64_t total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file()) total += entry.file_size();
  }
  return total;
}

void run_build(const BuildArgs& args) {
  PackageOptions options;
  if (!args.only.empty()) options.parts = {parse_package_part(args.only)};
  const bool fp16 = args.precision == "fp16";
  LinearOptions linear;
  linear.format = parse_weight_format(fp16 ? "fp32" : args.precision);
  linear.block_size = args.block_size;
  linear.symmetric = !args.asymmetric;
  linear.accuracy_level = args.accuracy_level;
  options.text.linear = linear;
  options.text.lm_head = args.float_lm_head ? LinearOptions{} : linear;
  options.embedding = args.float_embedding ? LinearOptions{} : linear;
  options.text.all_logits = args.all_logits;
  options.text.fp16 = fp16;
  options.embedding_fp16 = fp16;
  options.vision.linear = linear;
  // A quantized package's vision encoder is int8 unless asked otherwise: its feature error against
  // fp32 (~2%, cosine 0.9998; README "Speed") is far below what int4/int8 decoder weights already
  // cost, and it is what makes an image run fast. fp32 and fp16 packages keep an fp32 encoder.
  const bool quantized = args.precision == "int8" || args.precision == "int4";
  const std::string vision_precision = !args.vision_precision.empty() ? args.vision_precision : quantized ? "int8" : "fp32";
  options.vision.fp16 = vision_precision == "fp16";
  options.vision.linear.format = parse_weight_format(options.vision.fp16 ? "fp32" : vision_precision);
  options.max_length = args.max_length;
  options.overwrite = args.force;
  options.tokenizer_dir = args.tokenizer_dir;
  options.chat_template = args.chat_template;
  options.generation_config = args.generation_config;
  options.preprocessor_config = args.preprocessor_config;
  options.video_preprocessor_config = args.video_preprocessor_config;
  options.show_progress = !args.quiet;
  const auto start = std::chrono::steady_clock::now();
  build_package(args.model, args.out, options);
  if (args.quiet) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "wrote %s in %.1f s:\n", args.out.c_str(), seconds);
  for (const char* part : {package::kVisionModel, package::kEmbeddingModel, package::kTextModel}) {
    const std::filesystem::path model = std::filesystem::path(args.out) / part;
    if (!std::filesystem::exists(model)) continue;
    const std::uint64_t bytes = onnx_model_bytes(model);
    std::fprintf(stderr, "  %-16s %s\n", part, format_bytes(bytes).c_str());
  }
  std::fprintf(stderr, "  %-16s %s\n", "total", format_bytes(folder_bytes(args.out)).c_str());
}

}  // namespace

void add_build_command(CLI::App& app) {
  auto args = std::make_shared<BuildArgs>();
  CLI::App* cmd = app.add_subcommand("build", "Export a Hugging Face Qwen3-VL checkpoint to an ONNX package");
  cmd->add_option("--model", args->model, "Hugging Face checkpoint folder")->required();
  cmd->add_option("--out", args->out, "Package folder to write")->required();
  // Value sets and ranges are checked while parsing: a wrong value is a usage error (exit 2).
  const std::vector<std::string> precisions = {"fp32", "fp16", "int8", "int4"};
  cmd->add_option("--only", args->only, "Build one part: vision, embedding or text (default: all)")
      ->check(CLI::IsMember({"vision", "embedding", "text"}));
  cmd->add_option("--precision", args->precision, "Decoder and embedding: fp32, fp16 (weights, compute and KV cache), int8 or int4 (weights)")
      ->capture_default_str()
      ->check(CLI::IsMember(precisions));
  cmd->add_option("--vision-precision", args->vision_precision,
                  "Vision encoder: fp32, fp16 (weights and compute), int8 or int4 (linear weights); default int8 "
                  "for int8/int4 packages, fp32 otherwise")
      ->check(CLI::IsMember(precisions));
  // What the quantizer and ORT's MatMulNBits / GatherBlockQuantized accept: powers of two 16..256.
  cmd->add_option("--block-size", args->block_size, "int8/int4 block size: 16, 32, 64, 128 or 256")
      ->capture_default_str()
      ->check(CLI::IsMember({16, 32, 64, 128, 256}));
  cmd->add_flag("--asymmetric", args->asymmetric, "int8/int4 with zero points (default: symmetric)");
  cmd->add_option("--accuracy-level", args->accuracy_level, "MatMulNBits accuracy_level (0-4; 4 = int8 compute)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4));
  cmd->add_flag("--float-lm-head", args->float_lm_head, "Keep lm_head in fp32 when quantizing");
  cmd->add_flag("--float-embedding", args->float_embedding, "Keep the token embedding table in fp32 when quantizing");
  cmd->add_flag("--all-logits", args->all_logits, "Logits for every prompt position (default: last only)");
  cmd->add_option("--max-length", args->max_length, "Context length written to genai_config.json (>= 1)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 31));
  cmd->add_flag("--force", args->force, "Replace an existing package folder");
  cmd->add_option("--tokenizer-dir", args->tokenizer_dir, "Tokenizer files, when the checkpoint has none");
  // What a checkpoint lacks is given explicitly: build never substitutes another model's file.
  // Each replaces the checkpoint's file of that kind and is stored in the package the same way.
  cmd->add_option("--chat-template", args->chat_template,
                  "Chat template: a .jinja file, or a .json file with a \"chat_template\" string "
                  "(default: the checkpoint's chat_template.jinja, chat_template.json or tokenizer_config.json)");
  cmd->add_option("--generation-config", args->generation_config,
                  "generation_config.json to use (default: the checkpoint's)");
  cmd->add_option("--preprocessor-config", args->preprocessor_config,
                  "preprocessor_config.json to use (default: the checkpoint's)");
  cmd->add_option("--video-preprocessor-config", args->video_preprocessor_config,
                  "video_preprocessor_config.json to use (default: the checkpoint's)");
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  cmd->callback([args] { run_build(*args); });
}

}  // namespace q3vl::cli
