#pragma once
// Flags shared by `q3vl run` and `q3vl chat`: package, sampling, limits, image budget, timing.
// Every value is range-checked when the command line is parsed (a bad one exits 2 naming it).
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "q3vl/conversation.h"
#include "q3vl/model.h"

namespace q3vl::cli {

struct GenerationFlags {
  std::string model;
  std::string system;
  std::string system_file;
  bool greedy = false;
  std::optional<float> temperature;
  std::optional<std::int64_t> top_k;
  std::optional<float> top_p;
  std::optional<float> min_p;
  std::optional<float> repetition_penalty;
  std::optional<std::uint64_t> seed;
  std::int64_t max_new_tokens = 512;
  std::vector<std::string> stop;
  std::int64_t context = 0;
  std::optional<std::int64_t> max_image_tokens;
  std::optional<std::int64_t> min_image_tokens;
  std::optional<std::int64_t> max_vision_memory_mb;
  std::optional<double> fps;
  std::optional<std::int64_t> max_frames;
  std::optional<std::int64_t> max_video_tokens;
  std::optional<std::int64_t> min_video_tokens;
  int threads = 0;
  bool verbose = false;
  std::string json_schema;  // --json-schema: a file, or the schema itself when it starts with '{'
  bool json_object = false;  // --json: any JSON object
  std::string tools;         // --tools: a file of OpenAI tool definitions, or the JSON list itself
  std::string tool_choice = "auto";  // --tool-choice: auto, none, required, or a function's name
  bool hide_thinking = false;  // --hide-thinking: a Thinking model's reasoning is not printed
  std::string template_vars;   // --template-vars: more chat template variables, a JSON object

  void add_to(CLI::App& cmd);
  // Checks between options (CLI::ValidationError, exit 2) and reads --system-file; call first.
  void finish();
  // `images_expected`: start loading the vision encoder alongside the text models.
  ModelOptions model_options(bool images_expected = false) const { return ModelOptions{threads, verbose, images_expected}; }
  // Package defaults (generation_config.json) overridden by the flags given.
  ReplyOptions reply_options(const Model& loaded) const;
  // Says once on stderr when the user's image budget overrides the package's.
  ConversationOptions conversation_options(const Model& loaded) const;
};

// CLI::ValidationError (exit 2) naming the option and the byte offset in its value unless `text`
// is valid UTF-8.
void require_command_line_utf8(const std::string& text, const std::string& option);

// A text option's value from a file ("-": standard input), read whole; InvalidInput names the
// option and the file when it cannot be read or is larger than any context could hold.
std::string read_text_file(const std::string& option, const std::string& path);

// "image tokens 256 | vision 812 ms | vision load 301 ms | prefill 300 tok in 4100 ms (73.2 tok/s) |
// first token 4950 ms | decode 31 tok (12.9 tok/s)"; `load_ms` (process start until the model was
// ready) leads the line when given; a turn with videos adds "video tokens 120 | frames 8 | video
// decode 95 ms | " after the image tokens.
std::string timing_line(const Timings& t, double load_ms = -1);

}  // namespace q3vl::cli
