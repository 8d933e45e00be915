// q3vl serve: the OpenAI-compatible HTTP server (src/server). Binds first (a taken port fails in
// milliseconds), answers /health with 503 while the package loads, prints the URL once ready, and
// on SIGTERM or SIGINT stops gracefully (in-flight requests get --shutdown-timeout to finish) and
// exits 0.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "q3vl/error.h"
#include "server/http_server.h"

namespace q3vl::cli {
namespace {

struct ServeFlags {
  server::ServerOptions options;
  std::string allowed_media_dir;
  std::int64_t max_body_mb = 32;
  std::int64_t max_image_pixels = 0;
  std::int64_t max_image_megapixels_decoded = 25;
  std::int64_t max_vision_memory_mb = 0;
  std::int64_t max_video_mb = 256;
  std::int64_t vision_cache_mb = 512;
  std::int64_t kv_cache_mb = 0;
};

// Blocks SIGINT/SIGTERM in every thread started from now on; the caller waits for them with sigwait.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

std::filesystem::path make_scratch_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "q3vl-serve-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw Error("cannot create a scratch folder under " + std::filesystem::temp_directory_path().string());
  return pattern;
}

void serve(ServeFlags& flags) {
  server::ServerOptions& options = flags.options;
  server::SchedulerOptions& scheduler = options.scheduler;
  if (!flags.allowed_media_dir.empty()) {
    std::error_code error;
    const auto dir = std::filesystem::canonical(flags.allowed_media_dir, error);
    if (error || !std::filesystem::is_directory(dir)) throw InvalidInput("--allowed-media-dir " + flags.allowed_media_dir + ": not a folder");
    // Every file the server's user can read would be a request away.
    if (dir == dir.root_path()) {
      throw InvalidInput("--allowed-media-dir " + flags.allowed_media_dir + " is the root folder: name a folder that holds only media");
    }
    scheduler.media.allowed_media_dir = dir;
  }
  options.max_body_bytes = static_cast<std::uint64_t>(flags.max_body_mb) << 20;
  scheduler.media.image_limits.max_pixels = flags.max_image_megapixels_decoded * 1'000'000;
  scheduler.media.image_limits.max_file_bytes = options.max_body_bytes;
  scheduler.media.max_video_bytes = static_cast<std::uint64_t>(flags.max_video_mb) << 20;
  if (flags.max_vision_memory_mb > 0) scheduler.conversation.vision_memory_budget_bytes = static_cast<std::uint64_t>(flags.max_vision_memory_mb) << 20;
  options.model.vision_cache_bytes = static_cast<std::uint64_t>(flags.vision_cache_mb) << 20;
  scheduler.reply.max_image_pixels = flags.max_image_pixels;  // tokens: by the model's own patch geometry, once loaded
  scheduler.reply.default_max_tokens = options.request.max_tokens_cap;
  scheduler.kv_cache_bytes = static_cast<std::uint64_t>(flags.kv_cache_mb) << 20;

  const sigset_t stop_signals = block_stop_signals();
  const std::filesystem::path scratch = make_scratch_dir();
  scheduler.media.scratch_dir = scratch;
  struct ScratchRemover {  // the folder is ours: created above, only request files inside
    std::filesystem::path dir;
    ~ScratchRemover() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  } remover{scratch};

  if (options.api_key.empty() && options.host != "127.0.0.1" && options.host != "::1" && options.host != "localhost") {
    std::fprintf(stderr, "q3vl serve: warning: listening on %s without --api-key: anyone who can reach it can use it\n",
                 options.host.c_str());
  }
  server::HttpServer http(options);
  const int port = http.start();
  std::fprintf(stderr, "q3vl serve: loading %s ...\n", options.package.string().c_str());
  http.load_model();
  if (const std::string note = http.text_model_note(); !note.empty()) std::fprintf(stderr, "q3vl serve: %s\n", note.c_str());
  if (const std::string note = http.vision_model_note(); !note.empty()) std::fprintf(stderr, "q3vl serve: %s\n", note.c_str());
  std::printf("q3vl serve: model \"%s\" ready on http://%s:%d/v1 (%d slot%s of %lld tokens)\n", http.model_name().c_str(),
              options.host.c_str(), port, scheduler.parallel, scheduler.parallel == 1 ? "" : "s",
              static_cast<long long>(http.context_per_slot()));
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::fprintf(stderr, "q3vl serve: %s: finishing in-flight requests (up to %.0f s), then exiting\n",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT", options.shutdown_timeout_s);
  http.shutdown();
  std::fprintf(stderr, "q3vl serve: stopped\n");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  server::ServerOptions& o = flags->options;
  CLI::App* cmd = app.add_subcommand("serve", "Serve a package over HTTP with OpenAI's chat completions API");
  cmd->add_option("-m,--model", o.package, "q3vl package folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--name", o.model_name, "Model name in /v1/models and replies (default: the package folder's name)");
  cmd->add_option("--host", o.host, "Address to listen on (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", o.port, "Port (0: any free port)")->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", o.api_key, "Require 'Authorization: Bearer KEY' (default: $Q3VL_API_KEY, else none)")
      ->envname("Q3VL_API_KEY");
  cmd->add_option("--parallel", o.scheduler.parallel, "Requests generated at once (each its own KV cache)")->check(CLI::Range(1, 64));
  cmd->add_option("--max-queue", o.scheduler.max_queue, "Requests waiting for a slot before 429")->check(CLI::Range(0, 4096));
  cmd->add_option("--allowed-media-dir", flags->allowed_media_dir, "Folder whose files requests may name as images/videos");
  cmd->add_option("--context", o.scheduler.conversation.context_length, "Context length per slot (default: the package's)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 20));
  cmd->add_option("--kv-cache-mb", flags->kv_cache_mb,
                  "Memory for all slots' KV caches; each slot's context shrinks to fit (default: parallel x context)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 24));
  cmd->add_option("--prefill-chunk", o.scheduler.prefill_chunk_tokens,
                  "Prompt tokens fed between two batched decoder steps (smaller: smoother streams)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  cmd->add_option("--max-prompt-tokens", o.scheduler.max_prompt_tokens, "Longest prompt accepted (default: the context)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 20));
  cmd->add_option("--max-tokens", o.request.max_tokens_cap, "Most tokens one reply may ask for (and the default)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  cmd->add_option("--max-images", o.request.max_media_items, "Images and videos per request")->check(CLI::Range(0, 1024));
  cmd->add_option("--max-image-pixels", flags->max_image_pixels, "Largest per-image pixel budget (default: the package's)")
      ->check(CLI::Range(std::int64_t{1024}, std::int64_t{1} << 32));
  cmd->add_option("--max-decoded-megapixels", flags->max_image_megapixels_decoded, "Largest image file accepted, in decoded megapixels")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--max-body-mb", flags->max_body_mb, "Largest request body (413 above)")->check(CLI::Range(1, 4096));
  cmd->add_option("--max-video-mb", flags->max_video_mb, "Largest video in a data URL")->check(CLI::Range(1, 65536));
  cmd->add_option("--max-vision-memory-mb", flags->max_vision_memory_mb, "Refuse media whose vision pass needs more")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 30));
  cmd->add_option("--vision-cache-mb", flags->vision_cache_mb,
                  "Memory for the features of recently seen images/videos, shared by all slots (0: off)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 20));
  cmd->add_option("--request-timeout", o.request_timeout_s, "Seconds a request may take, queue included (504 after)")
      ->check(CLI::Range(1.0, 86400.0));
  cmd->add_option("--shutdown-timeout", o.shutdown_timeout_s, "Seconds in-flight requests get after SIGTERM")->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--threads", o.model.threads, "ONNX Runtime threads (0: one per physical core this process may use, within its CPU quota)")->check(CLI::Range(0, 1024));
  cmd->callback([flags] { serve(*flags); });
}

}  // namespace q3vl::cli
