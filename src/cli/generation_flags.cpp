#include "cli/generation_flags.h"

#include <cerrno>
#include <cfloat>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <thread>

#include "cli/option_checks.h"
#include "text/tokenizer.h"
#include "util/json_fields.h"
#include "q3vl/error.h"

namespace q3vl::cli {
namespace {

// Large enough for any real image budget, small enough that tokens * pixels fits in int64.
constexpr std::int64_t kMostImageTokens = std::int64_t{1} << 32;
// ONNX Runtime starts one thread per count; thousands exhaust the process (std::system_error abort).
constexpr int kMostThreads = 256;
// A text option from a file: far beyond any context (262144 tokens are ~1 MB of text), but bounded
// so that /dev/zero or a huge file is refused instead of exhausting memory.
constexpr std::size_t kMostTextFileBytes = std::size_t{64} << 20;

std::string read_bounded(std::istream& in, const std::string& option, const std::string& path) {
  std::string text;
  std::array<char, 65536> buffer{};
  while (in.read(buffer.data(), buffer.size()) || in.gcount() > 0) {
    text.append(buffer.data(), static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMostTextFileBytes) {
      throw InvalidInput(option + " " + path + ": more than " + std::to_string(kMostTextFileBytes >> 20) +
                         " MB of text (no context holds that much)");
    }
  }
  if (in.bad()) throw InvalidInput(option + " " + path + ": cannot read it (" + std::strerror(errno) + ")");
  return text;
}

}  // namespace

std::string read_text_file(const std::string& option, const std::string& path) {
  if (path == "-") return read_bounded(std::cin, option, "(standard input)");
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) throw InvalidInput(option + " " + path + ": is a directory, not a text file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInput(option + " " + path + ": cannot open it (" + std::strerror(errno) + ")");
  return read_bounded(in, option, path);
}

void GenerationFlags::add_to(CLI::App& cmd) {
  constexpr double kMostFloat = FLT_MAX;
  constexpr std::int64_t kMostInt = std::numeric_limits<std::int64_t>::max();
  cmd.add_option("--model", model, "Package folder (from q3vl build)")->required();
  CLI::Option* system_text = cmd.add_option("--system", system, "System prompt");
  cmd.add_option("--system-file", system_file, "System prompt read from a file (-: standard input)")->excludes(system_text);
  cmd.add_flag("--greedy", greedy, "Argmax decoding (default: the package's generation_config.json)");
  cmd.add_option("--temperature", temperature, "Sampling temperature (> 0)")->check(finite_range(0, kMostFloat, true));
  cmd.add_option("--top-k", top_k, "Keep the k most likely tokens (0: off)")->check(integer_range(0, kMostInt));
  cmd.add_option("--top-p", top_p, "Nucleus sampling mass, in (0, 1]")->check(finite_range(0, 1, true));
  cmd.add_option("--min-p", min_p, "Drop tokens below min-p times the top probability, in [0, 1]")->check(finite_range(0, 1));
  cmd.add_option("--repetition-penalty", repetition_penalty, "HF repetition penalty (> 0; 1: off)")
      ->check(finite_range(0, kMostFloat, true));
  cmd.add_option("--seed", seed, "Random seed for sampling (0..2^64-1)")->check(unsigned_integer());
  cmd.add_option("--max-new-tokens", max_new_tokens, "Most tokens to generate per reply (>= 1)")
      ->capture_default_str()
      ->check(integer_range(1, kMostInt));
  cmd.add_option("--stop", stop, "Stop when this text appears (repeatable)");
  CLI::Option* schema = cmd.add_option("--json-schema", json_schema,
                                       "Reply with JSON matching this JSON Schema (a file, or the schema if it starts with '{')");
  cmd.add_flag("--json", json_object, "Reply with a JSON object")->excludes(schema);
  cmd.add_option("--tools", tools,
                 "Tools the model may call: OpenAI tool definitions, a JSON list (a file, or the list if it starts with '[')");
  cmd.add_option("--tool-choice", tool_choice,
                 "auto (the model decides), none, required (one call of a tool), or a tool's name (one call of it)")
      ->capture_default_str();
  cmd.add_option("--template-vars", template_vars,
                 "More chat template variables as a JSON object, e.g. '{\"enable_thinking\": false}' (a file, or the object "
                 "if it starts with '{')");
  cmd.add_flag("--hide-thinking", hide_thinking, "Do not print a Thinking model's reasoning (shown dimmed on a terminal)");
  cmd.add_option("--context", context, "Context length in tokens (default: the package's max_length)")
      ->check(integer_range(1, kMostInt));
  cmd.add_option("--max-image-tokens", max_image_tokens, "Pixel budget per image, in visual tokens (32x32 pixels each)")
      ->check(integer_range(1, kMostImageTokens));
  cmd.add_option("--min-image-tokens", min_image_tokens, "Smallest image size, in visual tokens")
      ->check(integer_range(1, kMostImageTokens));
  cmd.add_option("--fps", fps, "Video frames sampled per second of the clip (default: the package's, HF's 2)")
      ->check(finite_range(0, 1000, true));
  cmd.add_option("--max-frames", max_frames, "Most frames sampled from one video (default: the package's, HF's 768)")
      ->check(integer_range(1, 100000));
  cmd.add_option("--max-video-tokens", max_video_tokens,
                 "Token budget of one video (frame pairs x 32x32-pixel blocks; default: the package's, 12288)")
      ->check(integer_range(1, kMostImageTokens));
  cmd.add_option("--min-video-tokens", min_video_tokens, "Smallest size of one video, in visual tokens")
      ->check(integer_range(1, kMostImageTokens));
  cmd.add_option("--max-vision-memory-mb", max_vision_memory_mb,
                 "Refuse images whose vision encoder would need more memory than this (default: env "
                 "Q3VL_MAX_VISION_MEMORY_MB, else 3/4 of physical memory)")
      ->check(integer_range(1, std::int64_t{1} << 40));
  cmd.add_option("--threads", threads, "Threads per ONNX Runtime session (0: one per physical core this process may use, within its CPU quota; at most 256)")
      ->check(integer_range(0, kMostThreads));
  cmd.add_flag("--verbose", verbose, "Print image tokens, vision time, prefill and decode speed; ONNX Runtime warnings");
}

void GenerationFlags::finish() {
  if (min_image_tokens && max_image_tokens && *min_image_tokens > *max_image_tokens) {
    throw CLI::ValidationError("--min-image-tokens", std::to_string(*min_image_tokens) +
                                                         " is more than --max-image-tokens " +
                                                         std::to_string(*max_image_tokens));
  }
  if (min_video_tokens && max_video_tokens && *min_video_tokens > *max_video_tokens) {
    throw CLI::ValidationError("--min-video-tokens", std::to_string(*min_video_tokens) +
                                                         " is more than --max-video-tokens " +
                                                         std::to_string(*max_video_tokens));
  }
  const unsigned cores = std::thread::hardware_concurrency();
  if (cores > 0 && threads > static_cast<int>(cores)) {
    std::fprintf(stderr, "q3vl: warning: --threads %d is more than the %u cores of this machine (slower, not faster)\n",
                 threads, cores);
  }
  if (!system_file.empty()) {
    system = read_text_file("--system-file", system_file);
    require_valid_utf8(system, "--system-file " + system_file);
  }
  require_command_line_utf8(system, "--system");
}

void require_command_line_utf8(const std::string& text, const std::string& option) {
  try {
    require_valid_utf8(text, option);
  } catch (const InvalidInput& e) {
    throw CLI::ValidationError(e.what());  // a bad command line: exit 2
  }
}

ReplyOptions GenerationFlags::reply_options(const Model& loaded) const {
  ReplyOptions o;
  SamplingOptions sampling = loaded.default_sampling();
  if (greedy) sampling.greedy = true;
  if (temperature || top_k || top_p || min_p || seed) sampling.greedy = greedy;  // sampling flags imply sampling
  if (temperature) sampling.temperature = *temperature;
  if (top_k) sampling.top_k = *top_k;
  if (top_p) sampling.top_p = *top_p;
  if (min_p) sampling.min_p = *min_p;
  if (repetition_penalty) sampling.repetition_penalty = *repetition_penalty;
  if (seed) sampling.seed = *seed;
  o.sampling = sampling;
  o.max_new_tokens = max_new_tokens;
  o.stop_strings = stop;
  if (json_object) o.response_format.kind = ResponseFormat::Kind::JsonObject;
  if (!json_schema.empty()) {
    o.response_format.kind = ResponseFormat::Kind::JsonSchema;
    o.response_format.schema = json_schema.front() == '{' ? json_schema : read_text_file("--json-schema", json_schema);
  }
  if (!tools.empty()) {
    const std::string text = tools.front() == '[' ? tools : read_text_file("--tools", tools);
    const nlohmann::ordered_json list = parse_ordered_json_bounded(text, "--tools");
    if (!list.is_array()) throw InvalidInput("--tools: expected a JSON list of tool definitions, got " + json_type_name(list));
    for (const nlohmann::ordered_json& tool : list) o.tools.push_back(tool.dump());
  }
  if (!template_vars.empty()) {
    o.template_variables = template_vars.front() == '{' ? template_vars : read_text_file("--template-vars", template_vars);
    // Parsed now, so that an empty or broken file is named here (an empty string means "none" below).
    if (!parse_ordered_json_bounded(o.template_variables, "--template-vars").is_object()) {
      throw InvalidInput("--template-vars: expected a JSON object of template variables");
    }
  }
  if (tool_choice == "none") {
    o.tool_choice.mode = ToolChoice::Mode::None;
  } else if (tool_choice == "required") {
    o.tool_choice.mode = ToolChoice::Mode::Required;
  } else if (tool_choice != "auto") {
    o.tool_choice = {ToolChoice::Mode::Function, tool_choice};
  }
  if (o.tool_choice.mode != ToolChoice::Mode::Auto && o.tools.empty()) {
    throw InvalidInput("--tool-choice " + tool_choice + " needs --tools");
  }
  return o;
}

ConversationOptions GenerationFlags::conversation_options(const Model& loaded) const {
  ConversationOptions o;
  o.system_prompt = system;
  o.context_length = context;
  o.max_image_tokens = max_image_tokens;
  o.min_image_tokens = min_image_tokens;
  // The library lets a single user bound move the package's other bound; say so.
  if (max_image_tokens && !min_image_tokens && *max_image_tokens < loaded.min_image_tokens()) {
    std::fprintf(stderr,
                 "q3vl: note: --max-image-tokens %lld is below the package's minimum of %lld image tokens; "
                 "images get at most %lld\n",
                 static_cast<long long>(*max_image_tokens), static_cast<long long>(loaded.min_image_tokens()),
                 static_cast<long long>(*max_image_tokens));
  }
  if (min_image_tokens && !max_image_tokens && *min_image_tokens > loaded.max_image_tokens()) {
    std::fprintf(stderr,
                 "q3vl: note: --min-image-tokens %lld is above the package's maximum of %lld image tokens; "
                 "images get at least %lld\n",
                 static_cast<long long>(*min_image_tokens), static_cast<long long>(loaded.max_image_tokens()),
                 static_cast<long long>(*min_image_tokens));
  }
  o.video_fps = fps;
  o.max_video_frames = max_frames;
  o.max_video_tokens = max_video_tokens;
  o.min_video_tokens = min_video_tokens;
  if (max_vision_memory_mb) o.vision_memory_budget_bytes = static_cast<std::uint64_t>(*max_vision_memory_mb) << 20;
  return o;
}

std::string timing_line(const Timings& t, double load_ms) {
  auto rate = [](std::int64_t tokens, double ms) { return ms > 0 ? 1000.0 * static_cast<double>(tokens) / ms : 0.0; };
  char load[48] = "";
  if (load_ms >= 0) std::snprintf(load, sizeof load, "load %.0f ms | ", load_ms);
  char video[96] = "";
  if (t.video_tokens > 0) {
    std::snprintf(video, sizeof video, "video tokens %lld | frames %lld | video decode %.0f ms | ",
                  static_cast<long long>(t.video_tokens), static_cast<long long>(t.video_frames), t.video_decode_ms);
  }
  char line[420];
  std::snprintf(line, sizeof line,
                "%simage tokens %lld | %svision %.0f ms | vision load %.0f ms | prefill %lld tok in %.0f ms (%.1f tok/s) | "
                "first token %.0f ms | decode %lld tok (%.1f tok/s)",
                load, static_cast<long long>(t.image_tokens), video, t.vision_ms, t.vision_load_ms,
                static_cast<long long>(t.prefill_tokens), t.prefill_ms, rate(t.prefill_tokens, t.prefill_ms),
                t.time_to_first_token_ms, static_cast<long long>(t.decode_tokens), rate(t.decode_tokens, t.decode_ms));
  return line;
}

}  // namespace q3vl::cli
