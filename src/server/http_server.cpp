#include "server/http_server.h"

#include <httplib.h>
#include <openssl/crypto.h>
#include <sys/socket.h>

#include <chrono>
#include <filesystem>
#include <cstdio>
#include <mutex>
#include <random>

#include "engine/model_data.h"
#include "q3vl/error.h"
#include "server/chat_request.h"
#include "server/job.h"
#include "server/openai_json.h"
#include "server/scheduler.h"

namespace q3vl::server {
namespace {

using namespace std::chrono_literals;

constexpr auto kPollInterval = 100ms;  // how often a waiting handler checks its client and deadline

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(to_wire(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& error) {
  send_json(res, error.status(), error_json(error));
  if (error.status() == 429) res.set_header("Retry-After", "1");
  if (error.status() == 401) res.set_header("WWW-Authenticate", "Bearer");
}

// Equal-time comparison of the presented key with ours: digests first, so neither the content nor
// the length of the key leaks through timing.
bool same_key(const std::string& presented, const std::string& expected) {
  const Sha256Digest a = Sha256().update(presented).finish();
  const Sha256Digest b = Sha256().update(expected).finish();
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Identity of each message as sent (role, text, media URLs), for sending a client's next turn to
// the slot that holds its history.
std::vector<Sha256Digest> message_keys(const ChatRequest& request) {
  std::vector<Sha256Digest> keys;
  for (const RequestMessage& message : request.messages) {
    Sha256 hash;
    hash.update(message.role);
    for (const RequestPart& part : message.content) hash.update_int(static_cast<int>(part.kind)).update_int(static_cast<std::int64_t>(part.text.size())).update(part.text);
    keys.push_back(hash.finish());
  }
  return keys;
}

ApiError event_error(const JobEvent& event) { return ApiError(event.status, event.message, event.param, event.code); }

}  // namespace

// Shared by the handler threads, the stream providers and the owner; outlives them all.
struct HttpServer::State {
  ServerOptions options;
  std::string model_name;
  std::string fingerprint;
  std::int64_t created = 0;
  ServerMetrics metrics;
  std::atomic<bool> ready{false};
  std::atomic<bool> shutting_down{false};
  std::shared_ptr<const Model> model;
  std::unique_ptr<Scheduler> scheduler;
  std::mutex id_mutex;
  std::mt19937_64 id_source{std::random_device{}()};

  std::string new_completion_id() {
    std::lock_guard lock(id_mutex);
    char text[40];
    std::snprintf(text, sizeof text, "chatcmpl-%016llx%08llx", static_cast<unsigned long long>(id_source()),
                  static_cast<unsigned long long>(id_source() & 0xffffffffu));
    return text;
  }

  void chat_completions(const httplib::Request& req, httplib::Response& res);
  void stream_reply(httplib::Response& res, std::shared_ptr<Job> job, CompletionIdentity identity, bool include_usage,
                    bool with_logprobs, Clock::time_point arrived);
};

HttpServer::HttpServer(ServerOptions options) : options_(std::move(options)), http_(std::make_unique<httplib::Server>()) {
  model_name_ = options_.model_name.empty() ? options_.package.filename().string() : options_.model_name;
  if (model_name_.empty()) model_name_ = "q3vl";
  state_ = std::make_shared<State>();
  state_->options = options_;
  state_->model_name = model_name_;
  state_->fingerprint = "q3vl-" + std::string(Q3VL_VERSION);
  state_->created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  install_routes();
}

HttpServer::~HttpServer() {
  shutdown();
}

int HttpServer::start() {
  const int port = options_.port == 0 ? http_->bind_to_any_port(options_.host) : (http_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port < 0) {
    throw Error("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                " (address in use, not an address of this machine, or a privileged port)");
  }
  listener_ = std::thread([this] {
    http_->listen_after_bind();
    listener_done_ = true;
  });
  // stop() does nothing until the listener runs: wait for it, so a stop right after start (the
  // package failed to load) cannot be lost.
  while (!http_->is_running() && !listener_done_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

std::int64_t HttpServer::context_per_slot() const {
  return state_ && state_->scheduler ? state_->scheduler->context_length() : 0;
}

std::string HttpServer::text_model_note() const {
  return state_ && state_->model ? state_->model->text_model_note() : std::string();
}

std::string HttpServer::vision_model_note() const {
  return state_ && state_->model ? state_->model->vision_model_note() : std::string();
}

void HttpServer::load_model() {
  // A server is ready when the first image costs no more than later ones: the vision encoder loads
  // beside the text models, and before /health says so.
  ModelOptions model_options = options_.model;
  model_options.preload_vision = true;
  state_->model = Model::load(options_.package, model_options);
  if (std::filesystem::exists(state_->model->data().package.vision_model())) state_->model->data().vision();
  state_->scheduler = std::make_unique<Scheduler>(state_->model, options_.scheduler, state_->metrics);
  state_->ready = true;
}

void HttpServer::shutdown() {
  if (stopped_.exchange(true)) return;
  State& state = *state_;
  state.shutting_down = true;
  if (state.scheduler) {
    state.scheduler->begin_shutdown();
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.shutdown_timeout_s));
    if (!state.scheduler->wait_idle(deadline)) state.scheduler->cancel_all(CancelReason::Shutdown);
  }
  http_->stop();  // closes the listener; returns once the handler threads are done
  if (listener_.joinable()) listener_.join();
  state.scheduler.reset();
}

void HttpServer::install_routes() {
  httplib::Server& http = *http_;
  auto state = state_;
  const std::size_t pool = static_cast<std::size_t>(options_.scheduler.parallel + options_.scheduler.max_queue + 8);
  http.new_task_queue = [pool] { return new httplib::ThreadPool(pool); };
  // httplib's default adds SO_REUSEPORT, which lets a second server bind the same port and take
  // half its connections; a taken port must be an error instead.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  http.set_payload_max_length(options_.max_body_bytes);
  http.set_read_timeout(30, 0);
  http.set_write_timeout(30, 0);
  // Idle keep-alive connections hold a handler thread, and a graceful stop waits for them.
  http.set_keep_alive_timeout(2);
  http.set_keep_alive_max_count(1000);

  http.set_pre_routing_handler([state](const httplib::Request& req, httplib::Response& res) {
    if (state->options.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string header = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (header.rfind(prefix, 0) == 0 && same_key(header.substr(prefix.size()), state->options.api_key)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    send_error(res, ApiError(401, header.empty() ? "missing API key: send it as the header 'Authorization: Bearer KEY'"
                                                 : "wrong API key", "", "invalid_api_key"));
    if (req.path == "/v1/chat/completions") state->metrics.request_finished(401);
    return httplib::Server::HandlerResponse::Handled;
  });

  // Statuses httplib sets itself (404, 413, 400 for a malformed request line, ...) get OpenAI's body.
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message;
    switch (res.status) {
      case 404: message = "no route " + req.method + " " + req.path + " (this server has POST /v1/chat/completions, GET /v1/models, /health, /metrics)"; break;
      case 413: message = "the request body is larger than this server accepts (--max-body-mb)"; break;
      case 405: message = "method " + req.method + " is not allowed on " + req.path; break;
      default: message = "bad request (HTTP " + std::to_string(res.status) + ")"; break;
    }
    send_error(res, ApiError(res.status, message));
    return httplib::Server::HandlerResponse::Handled;
  }));

  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
    std::string what = "unknown";
    try {
      if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, ApiError(500, "internal error: " + what));
  });

  http.Get("/health", [state](const httplib::Request&, httplib::Response& res) {
    if (state->shutting_down) {
      send_json(res, 503, {{"status", "shutting down"}});
    } else if (!state->ready) {
      send_json(res, 503, {{"status", "loading"}});
    } else {
      send_json(res, 200, {{"status", "ok"}, {"slots", state->scheduler->parallel()}});
    }
  });

  http.Get("/metrics", [state](const httplib::Request&, httplib::Response& res) {
    res.set_content(state->metrics.render(), "text/plain; version=0.0.4");
  });

  http.Get("/v1/models", [state](const httplib::Request&, httplib::Response& res) {
    nlohmann::json model = {{"id", state->model_name}, {"object", "model"}, {"created", state->created}, {"owned_by", "q3vl"}};
    send_json(res, 200, {{"object", "list"}, {"data", nlohmann::json::array({model})}});
  });

  http.Post("/v1/chat/completions", [state](const httplib::Request& req, httplib::Response& res) {
    state->chat_completions(req, res);
  });
}

void HttpServer::State::chat_completions(const httplib::Request& req, httplib::Response& res) {
  const auto arrived = Clock::now();
  const auto deadline = arrived + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.request_timeout_s));
  auto fail = [&](const ApiError& error) {
    send_error(res, error);
    metrics.request_finished(error.status());
  };
  try {
    if (shutting_down) throw ApiError(503, "the server is shutting down; retry on another replica");
    if (!ready) throw ApiError(503, "the model is still loading; retry when GET /health says ok");
    ChatRequest request = parse_chat_request(req.body, options.request);
    const CompletionIdentity identity{new_completion_id(), std::chrono::duration_cast<std::chrono::seconds>(
                                                               std::chrono::system_clock::now().time_since_epoch()).count(),
                                      request.model.empty() ? model_name : request.model, fingerprint};
    const bool stream = request.stream, include_usage = request.include_usage, with_logprobs = request.logprobs;
    std::vector<Sha256Digest> keys = message_keys(request);
    auto job = std::make_shared<Job>(std::move(request), std::move(keys), arrived, deadline);
    scheduler->submit(job);

    // Until the prompt is accepted, the status is not decided: errors still become 4xx.
    for (bool accepted = false; !accepted;) {
      if (Clock::now() > deadline) {
        job->cancel(CancelReason::Timeout);
        throw ApiError(504, "the request waited longer than the server's --request-timeout");
      }
      std::optional<JobEvent> event = job->next_event(kPollInterval);
      if (!event) continue;
      if (event->kind == JobEvent::Kind::Failed) throw event_error(*event);
      accepted = event->kind == JobEvent::Kind::Ready;
    }
    if (stream) {
      stream_reply(res, job, identity, include_usage, with_logprobs, arrived);
      return;
    }
    for (;;) {
      std::optional<JobEvent> event = job->next_event(kPollInterval);
      if (!event) continue;  // the job's own deadline check ends it
      if (event->kind == JobEvent::Kind::Failed) throw event_error(*event);
      if (event->kind == JobEvent::Kind::Finished) {
        send_json(res, 200, completion_json(identity, event->reply, with_logprobs));
        metrics.request_finished(200);
        metrics.request_duration(std::chrono::duration<double>(Clock::now() - arrived).count());
        return;
      }
    }
  } catch (const ApiError& e) {
    fail(e);
  }
}

void HttpServer::State::stream_reply(httplib::Response& res, std::shared_ptr<Job> job, CompletionIdentity identity,
                                     bool include_usage, bool with_logprobs, Clock::time_point arrived) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // nginx: pass events through as they come
  auto provider = [this, job, identity, include_usage, with_logprobs, arrived,
                   started = false, sent_logprobs = std::size_t{0}](std::size_t, httplib::DataSink& sink) mutable {
    auto write = [&](const std::string& text) {
      if (sink.write(text.data(), text.size())) return true;
      job->cancel(CancelReason::ClientGone);
      return false;
    };
    if (!started) {
      started = true;
      if (!write(sse_event(chunk_json(identity, {{"role", "assistant"}, {"content", ""}}, std::nullopt)))) return false;
    }
    for (;;) {
      std::optional<JobEvent> event = job->next_event(kPollInterval);
      if (!event) {
        if (!sink.is_writable()) {  // the client went away while nothing was sent
          job->cancel(CancelReason::ClientGone);
          metrics.request_finished(499);
          return false;
        }
        continue;
      }
      switch (event->kind) {
        case JobEvent::Kind::Ready:
          break;
        case JobEvent::Kind::Text: {
          nlohmann::json logprobs = nullptr;
          if (with_logprobs) {
            logprobs = logprobs_json(event->logprobs);
            sent_logprobs += event->logprobs.size();
          }
          if (!write(sse_event(chunk_json(identity, event->delta, std::nullopt, logprobs)))) {
            metrics.request_finished(499);
            return false;
          }
          return true;  // back to httplib, which calls again for the next piece
        }
        case JobEvent::Kind::Finished: {
          const Reply& reply = event->reply;
          std::string tail;
          if (with_logprobs && sent_logprobs < reply.logprobs.size()) {
            // Tokens whose text was held back (a stop string's start, half a character).
            const std::span<const TokenChoice> rest(reply.logprobs.data() + sent_logprobs, reply.logprobs.size() - sent_logprobs);
            tail += sse_event(chunk_json(identity, {{"content", ""}}, std::nullopt, logprobs_json(rest)));
          }
          tail += sse_event(chunk_json(identity, nlohmann::json::object(), reply.finish_reason));
          if (include_usage) {
            tail += sse_event(usage_chunk_json(identity, usage_json(reply.prompt_tokens, reply.cached_tokens,
                                                                     static_cast<std::int64_t>(reply.tokens.size()))));
          }
          tail += "data: [DONE]\n\n";
          if (!write(tail)) {
            metrics.request_finished(499);
            return false;
          }
          sink.done();
          metrics.request_finished(200);
          metrics.request_duration(std::chrono::duration<double>(Clock::now() - arrived).count());
          return true;
        }
        case JobEvent::Kind::Failed: {
          // The status line is sent: the error travels as an event, as other OpenAI-style servers do.
          const ApiError error = event_error(*event);
          write(sse_event(error_json(error)));
          sink.done();
          metrics.request_finished(error.status());
          return true;
        }
      }
    }
  };
  res.set_chunked_content_provider("text/event-stream", std::move(provider), [job](bool) {
    job->cancel(CancelReason::ClientGone);  // no effect once finished; frees the slot at once otherwise
  });
}

}  // namespace q3vl::server
