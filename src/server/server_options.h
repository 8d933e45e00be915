#pragma once
// Everything `q3vl serve` is told on its command line.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "q3vl/model.h"
#include "server/scheduler.h"

namespace q3vl::server {

struct ServerOptions {
  std::filesystem::path package;
  std::string model_name;         // what /v1/models lists and replies name; "": the package folder's name
  std::string host = "127.0.0.1";
  int port = 8080;                // 0: any free port (tests)
  std::string api_key;            // "": no authentication
  ModelOptions model;
  SchedulerOptions scheduler;     // slots, queue, context, media policy, reply limits
  RequestLimits request;          // what one request may ask for
  std::uint64_t max_body_bytes = 32ull << 20;
  double request_timeout_s = 600;
  double shutdown_timeout_s = 10;  // for in-flight requests to finish after SIGTERM
};

}  // namespace q3vl::server
