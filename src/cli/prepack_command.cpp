// `q3vl prepack`: write (or, with --remove, delete) the text decoder with this CPU's prepacked
// weights inside a package; `q3vl run/chat/serve` then load it when it matches (engine/text_prepack.h).
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "engine/text_prepack.h"
#include "util/progress.h"

namespace q3vl::cli {
namespace {

struct PrepackArgs {
  std::string model;
  bool remove = false;
  int threads = 0;
};

void run_prepack(const PrepackArgs& args) {
  if (args.remove) {
    const int removed = remove_prepacked_text(args.model);
    std::printf("%s: %s\n", args.model.c_str(), removed > 0 ? "prepacked text decoder removed" : "no prepacked text decoder to remove");
    return;
  }
  const PrepackReport report = prepack_text_model(args.model, args.threads);
  std::printf("wrote %s (+ .data %s; text.onnx and its data: %s) in %.1f s\n", report.model.c_str(),
              format_bytes(report.data_bytes).c_str(), format_bytes(report.source_bytes).c_str(), report.seconds);
  std::printf("q3vl loads it instead of text.onnx on this CPU with this ONNX Runtime; onnxruntime-genai keeps reading text.onnx\n");
}

}  // namespace

void add_prepack_command(CLI::App& app) {
  auto args = std::make_shared<PrepackArgs>();
  CLI::App* cmd = app.add_subcommand(
      "prepack", "Store the text decoder's weights as ONNX Runtime packs them for this CPU, inside the package "
                 "(memory-mapped at load instead of a second copy on the heap; int8/int4 packages)");
  cmd->add_option("--model", args->model, "Package folder (written by q3vl build)")->required();
  cmd->add_flag("--remove", args->remove, "Remove the prepacked decoder instead");
  cmd->add_option("--threads", args->threads, "ONNX Runtime threads (0: one per physical core this process may use, within its CPU quota)")->check(CLI::Range(0, 1024));
  cmd->callback([args] { run_prepack(*args); });
}

}  // namespace q3vl::cli
