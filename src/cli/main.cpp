// q3vl: export Qwen3-VL checkpoints to ONNX and run them. Exit codes: 0 ok, 1 error, 2 usage.
// Standard output is checked before exit 0: a result that could not be written is an error.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <new>

#include <onnxruntime_cxx_api.h>

#include "cli/commands.h"
#include "cli/reply_output.h"
#include "q3vl/error.h"

namespace {

// A standard stream the caller closed (`q3vl run >&-`) would be reused by the next file opened:
// ONNX Runtime's trace file got the reply. Hold each closed one with /dev/null opened read-only,
// so that writing the reply fails (EBADF) and is reported instead of landing in some file.
void hold_closed_standard_streams() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int held = ::open("/dev/null", O_RDONLY);
    if (held >= 0 && held != fd) {
      ::dup2(held, fd);
      ::close(held);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  hold_closed_standard_streams();
  CLI::App app{"q3vl: Qwen3-VL to ONNX, and ONNX Runtime inference"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "q3vl 0.1.0");
  q3vl::cli::add_make_tiny_command(app);
  q3vl::cli::add_inspect_command(app);
  q3vl::cli::add_build_command(app);
  q3vl::cli::add_run_command(app);
  q3vl::cli::add_chat_command(app);
  q3vl::cli::add_serve_command(app);
  q3vl::cli::add_prepack_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, version or the usage error
    if (code == 0) return q3vl::cli::finish_stdout() ? 0 : 1;
    return 2;
  } catch (const q3vl::Error& e) {
    std::fprintf(stderr, "q3vl: error: %s\n", e.what());
    return 1;
  } catch (const Ort::Exception& e) {
    // Library code wraps ONNX Runtime's errors with context; this is the net for any that escape.
    std::fprintf(stderr, "q3vl: error: ONNX Runtime: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "q3vl: error: out of memory (try fewer or smaller images, --max-image-tokens, or --context)\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "q3vl: unexpected error: %s\n", e.what());
    return 1;
  }
  return q3vl::cli::finish_stdout() ? 0 : 1;
}
