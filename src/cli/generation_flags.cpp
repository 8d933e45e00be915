#include "cli/generation_flags.h"

#include <cstdio>

namespace q3vl::cli {

void GenerationFlags::add_to(CLI::App& cmd) {
  cmd.add_option("--model", model, "Package folder (from q3vl build)")->required();
  cmd.add_option("--system", system, "System prompt");
  cmd.add_flag("--greedy", greedy, "Argmax decoding (default: the package's generation_config.json)");
  cmd.add_option("--temperature", temperature, "Sampling temperature");
  cmd.add_option("--top-k", top_k, "Keep the k most likely tokens (0: off)");
  cmd.add_option("--top-p", top_p, "Nucleus sampling mass");
  cmd.add_option("--min-p", min_p, "Drop tokens below min-p times the top probability");
  cmd.add_option("--repetition-penalty", repetition_penalty, "HF repetition penalty (1: off)");
  cmd.add_option("--seed", seed, "Random seed for sampling");
  cmd.add_option("--max-new-tokens", max_new_tokens, "Most tokens to generate per reply")->capture_default_str();
  cmd.add_option("--stop", stop, "Stop when this text appears (repeatable)");
  cmd.add_option("--context", context, "Context length in tokens (default: the package's max_length)");
  cmd.add_option("--max-image-tokens", max_image_tokens, "Pixel budget per image, in visual tokens (32x32 pixels each)");
  cmd.add_option("--min-image-tokens", min_image_tokens, "Smallest image size, in visual tokens");
  cmd.add_option("--threads", threads, "Threads per ONNX Runtime session (0: one per core)");
  cmd.add_flag("--verbose", verbose, "Print image tokens, vision time, prefill and decode speed");
}

ReplyOptions GenerationFlags::reply_options(const Engine& engine) const {
  ReplyOptions o;
  o.sampling = engine.package().generation_defaults().sampling;
  if (greedy) o.sampling.greedy = true;
  if (temperature || top_k || top_p || min_p || seed) o.sampling.greedy = greedy;  // sampling flags imply sampling
  if (temperature) o.sampling.temperature = *temperature;
  if (top_k) o.sampling.top_k = *top_k;
  if (top_p) o.sampling.top_p = *top_p;
  if (min_p) o.sampling.min_p = *min_p;
  if (repetition_penalty) o.sampling.repetition_penalty = *repetition_penalty;
  if (seed) o.sampling.seed = *seed;
  o.max_new_tokens = max_new_tokens;
  o.stop_strings = stop;
  return o;
}

ConversationOptions GenerationFlags::conversation_options(const Engine& engine) const {
  ConversationOptions o;
  o.system_prompt = system;
  o.context_length = context;
  o.preprocess = read_preprocess_options(engine.package().preprocessor_config());
  const std::int64_t pixels_per_token = 32 * 32;  // one visual token = a 2x2 block of 16x16 patches
  if (max_image_tokens) o.preprocess.max_pixels = *max_image_tokens * pixels_per_token;
  if (min_image_tokens) o.preprocess.min_pixels = *min_image_tokens * pixels_per_token;
  return o;
}

std::string timing_line(const Timings& t) {
  auto rate = [](std::int64_t tokens, double ms) { return ms > 0 ? 1000.0 * static_cast<double>(tokens) / ms : 0.0; };
  char line[256];
  std::snprintf(line, sizeof line,
                "image tokens %lld | vision %.0f ms | prefill %lld tok in %.0f ms (%.1f tok/s) | first token %.0f ms | "
                "decode %lld tok (%.1f tok/s)",
                static_cast<long long>(t.image_tokens), t.vision_ms, static_cast<long long>(t.prefill_tokens), t.prefill_ms,
                rate(t.prefill_tokens, t.prefill_ms), t.time_to_first_token_ms, static_cast<long long>(t.decode_tokens),
                rate(t.decode_tokens, t.decode_ms));
  return line;
}

}  // namespace q3vl::cli
