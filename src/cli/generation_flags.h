#pragma once
// Flags shared by `q3vl run` and `q3vl chat`: package, sampling, limits, image budget, timing.
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "runtime/conversation.h"

namespace q3vl::cli {

struct GenerationFlags {
  std::string model;
  std::string system;
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
  int threads = 0;
  bool verbose = false;

  void add_to(CLI::App& cmd);
  // Package defaults (generation_config.json) overridden by the flags given.
  ReplyOptions reply_options(const Engine& engine) const;
  ConversationOptions conversation_options(const Engine& engine) const;
};

// "image tokens 300 | vision 812 ms | prefill 42 tok/s | first token 1.9 s | decode 17.1 tok/s"
std::string timing_line(const Timings& t);

}  // namespace q3vl::cli
