// q3vl: export Qwen3-VL checkpoints to ONNX and run them. Exit codes: 0 ok, 1 error, 2 usage.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "q3vl/error.h"

int main(int argc, char** argv) {
  CLI::App app{"q3vl: Qwen3-VL to ONNX, and ONNX Runtime inference"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "q3vl 0.1.0");
  q3vl::cli::add_make_tiny_command(app);
  q3vl::cli::add_inspect_command(app);
  q3vl::cli::add_build_command(app);
  q3vl::cli::add_run_command(app);
  q3vl::cli::add_chat_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, version or the usage error
    return code == 0 ? 0 : 2;
  } catch (const q3vl::Error& e) {
    std::fprintf(stderr, "q3vl: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "q3vl: unexpected error: %s\n", e.what());
    return 1;
  }
  return 0;
}
