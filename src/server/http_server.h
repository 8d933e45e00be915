#pragma once
// `q3vl serve`'s HTTP front: OpenAI's chat completions API (plain and streamed as server-sent
// events), /v1/models, /health and /metrics, on cpp-httplib. Requests are parsed and refused here;
// generation happens on the scheduler's slots. Starts answering before the model is loaded
// (/health says 503 until it is), and shuts down gracefully: new requests get 503, in-flight ones
// may finish until a deadline, then are cancelled.
#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "server/metrics.h"
#include "server/server_options.h"

namespace httplib {
class Server;
}

namespace q3vl::server {

class HttpServer {
 public:
  explicit HttpServer(ServerOptions options);
  ~HttpServer();  // stops everything
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port and starts answering (health: 503) on a background thread; returns the port.
  // Throws Error if the address cannot be bound.
  int start();
  // Loads the package and the slots; from then on /health is 200. Throws what Model::load throws.
  void load_model();
  // Graceful stop: refuse new requests, wait for in-flight ones until the shutdown deadline,
  // cancel the rest, close the listener. Idempotent.
  void shutdown();

  const std::string& model_name() const { return model_name_; }
  // After load_model: the tokens each slot's context holds (the KV budget may make it shorter).
  std::int64_t context_per_slot() const;
  // After load_model: Model::text_model_note() (which text decoder was loaded, when there is a choice)
  // and Model::vision_model_note() (which vision encoder loads).
  std::string text_model_note() const;
  std::string vision_model_note() const;

 private:
  struct State;  // the model, scheduler and request handling, shared with handler threads
  void install_routes();

  ServerOptions options_;
  std::string model_name_;
  std::unique_ptr<httplib::Server> http_;
  std::shared_ptr<State> state_;
  std::thread listener_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> listener_done_{false};
};

}  // namespace q3vl::server
