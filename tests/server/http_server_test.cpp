// `q3vl serve`'s HTTP server in-process on the golden `full` package, driven over loopback with
// cpp-httplib's client and raw sockets: HF's greedy text through the API (plain and streamed),
// OpenAI's response and error shapes, every refusal status, a client that disconnects mid-stream
// freeing its slot, the queue limit, and a graceful shutdown.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <thread>

#include "server/http_server.h"
#include "support/full_model.h"
#include "support/golden.h"
#include "util/npy.h"

namespace q3vl::server {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class HttpServerTest : public test::FullModelTest {
 protected:
  // A server on a free loopback port with these options (the package filled in), model loaded.
  struct Running {
    std::unique_ptr<HttpServer> server;
    int port = 0;
    httplib::Client client() const {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(60, 0);
      return c;
    }
  };
  static Running start(ServerOptions options = {}) {
    options.package = package();
    options.port = 0;
    options.model.threads = 1;
    options.scheduler.media.scratch_dir = dir().path();
    Running running;
    running.server = std::make_unique<HttpServer>(options);
    running.port = running.server->start();
    running.server->load_model();
    // cpp-httplib's client initialises function-local statics (a regex) on first use; doing that
    // here, before any test thread exists, keeps ThreadSanitizer from misreading its guard.
    running.client().Get("/health");
    return running;
  }
};

json greedy_request(const std::string& user_text, int max_tokens) {
  return {{"model", "q3vl-test"},
          {"messages", json::array({{{"role", "user"}, {"content", user_text}}})},
          {"temperature", 0},
          {"max_tokens", max_tokens}};
}

// `data: ...` payloads of a server-sent event stream.
std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    const std::size_t end = body.find("\n\n", at);
    out.push_back(body.substr(at + 6, end - at - 6));
    at = end;
  }
  return out;
}

// A raw HTTP exchange: sends `bytes`, returns what comes back until the server closes or `wait` passes.
std::string raw_exchange(int port, const std::string& bytes, std::chrono::milliseconds wait = 3000ms) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  timeval timeout{static_cast<time_t>(wait.count() / 1000), static_cast<suseconds_t>((wait.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string reply;
  char buffer[4096];
  const auto until = std::chrono::steady_clock::now() + wait;  // a stream never stops by itself
  for (ssize_t n; std::chrono::steady_clock::now() < until && (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) {
    reply.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return reply;
}

std::int64_t metric_value(httplib::Client& client, const std::string& line_prefix) {
  const auto res = client.Get("/metrics");
  if (!res) return -1;
  const std::size_t at = res->body.find("\n" + line_prefix + " ");
  if (at == std::string::npos) return -1;
  return std::stoll(res->body.substr(at + line_prefix.size() + 2));
}

TEST_F(HttpServerTest, GreedyTextEqualsHfPlainAndStreamed) {
  Running running = start();
  httplib::Client client = running.client();
  int checked = 0;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (c.model() != "full" || !c.entry["images"].empty()) continue;
    SCOPED_TRACE(c.name);
    ++checked;
    json request = {{"messages", c.entry["messages"]}, {"temperature", 0}, {"max_tokens", 32}};
    const auto plain = client.Post("/v1/chat/completions", request.dump(), "application/json");
    ASSERT_TRUE(plain);
    ASSERT_EQ(plain->status, 200) << plain->body;
    const json body = json::parse(plain->body);
    EXPECT_EQ(body["object"], "chat.completion");
    EXPECT_EQ(body["choices"][0]["message"]["content"], c.entry["greedy"]["decoded_text"]);
    EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(body["usage"]["completion_tokens"], 32);
    EXPECT_EQ(body["usage"]["prompt_tokens"], c.entry["sequence_length"]);
    EXPECT_TRUE(std::regex_match(body["id"].get<std::string>(), std::regex("chatcmpl-[0-9a-f]{24}")));

    request["stream"] = true;
    request["stream_options"] = {{"include_usage", true}};
    const auto streamed = client.Post("/v1/chat/completions", request.dump(), "application/json");
    ASSERT_TRUE(streamed);
    ASSERT_EQ(streamed->status, 200);
    EXPECT_EQ(streamed->get_header_value("Content-Type"), "text/event-stream");
    const std::vector<std::string> events = sse_payloads(streamed->body);
    ASSERT_GE(events.size(), 4u);
    EXPECT_EQ(events.back(), "[DONE]");
    std::string text;
    std::string finish;
    for (std::size_t i = 0; i + 1 < events.size(); ++i) {
      const json chunk = json::parse(events[i]);
      EXPECT_EQ(chunk["object"], "chat.completion.chunk");
      EXPECT_EQ(chunk["id"], json::parse(events[0])["id"]);
      if (chunk["choices"].empty()) {  // the usage chunk, last
        EXPECT_EQ(i + 2, events.size());
        EXPECT_EQ(chunk["usage"]["completion_tokens"], 32);
        // The second identical request found the whole prompt but one token in the slot's cache.
        EXPECT_EQ(chunk["usage"]["prompt_tokens_details"]["cached_tokens"], chunk["usage"]["prompt_tokens"].get<int>() - 1);
        continue;
      }
      const json& delta = chunk["choices"][0]["delta"];
      if (i == 0) {
        EXPECT_EQ(delta["role"], "assistant");
      }
      if (delta.contains("content")) text += delta["content"].get<std::string>();
      if (!chunk["choices"][0]["finish_reason"].is_null()) finish = chunk["choices"][0]["finish_reason"];
    }
    EXPECT_EQ(text, c.entry["greedy"]["decoded_text"]);
    EXPECT_EQ(finish, "length");
  }
  EXPECT_EQ(checked, 1);
}

TEST_F(HttpServerTest, HealthModelsAndMetrics) {
  Running running = start();
  httplib::Client client = running.client();
  const auto health = client.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  const auto models = client.Get("/v1/models");
  ASSERT_TRUE(models);
  const json list = json::parse(models->body);
  EXPECT_EQ(list["object"], "list");
  EXPECT_EQ(list["data"][0]["id"], "pkg");
  ASSERT_TRUE(client.Post("/v1/chat/completions", greedy_request("Hi", 3).dump(), "application/json"));
  // The slot's bookkeeping ends just after the answer is sent.
  for (int i = 0; i < 100 && metric_value(client, "q3vl_active_sequences") != 0; ++i) std::this_thread::sleep_for(10ms);
  const auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  for (const char* name : {"q3vl_requests_total{status=\"200\"} 1", "q3vl_generated_tokens_total 3", "q3vl_time_to_first_token_seconds_bucket",
                           "q3vl_time_per_output_token_seconds_count", "q3vl_queue_depth 0", "q3vl_active_sequences 0",
                           "q3vl_kv_cache_tokens"}) {
    EXPECT_NE(metrics->body.find(name), std::string::npos) << name << "\n" << metrics->body;
  }
  EXPECT_GE(metric_value(client, "q3vl_time_per_output_token_seconds_count"), 1);
  EXPECT_EQ(metric_value(client, "q3vl_kv_cache_tokens"), metric_value(client, "q3vl_prompt_tokens_total") + 2)
      << "the idle slot holds the prompt and the 2 fed reply tokens";
}

// Before the package is loaded the server answers, but only to say so.
TEST_F(HttpServerTest, LoadingIs503UntilTheModelIsReady) {
  ServerOptions options;
  options.package = package();
  options.port = 0;
  options.model.threads = 1;
  options.scheduler.media.scratch_dir = dir().path();
  HttpServer server(options);
  const int port = server.start();
  httplib::Client client("127.0.0.1", port);
  const auto health = client.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(json::parse(health->body)["status"], "loading");
  const auto early = client.Post("/v1/chat/completions", greedy_request("Hi", 2).dump(), "application/json");
  ASSERT_TRUE(early);
  EXPECT_EQ(early->status, 503);
  EXPECT_NE(early->body.find("still loading"), std::string::npos);
  server.load_model();
  EXPECT_EQ(client.Get("/health")->status, 200);
  EXPECT_EQ(client.Post("/v1/chat/completions", greedy_request("Hi", 2).dump(), "application/json")->status, 200);
}

// Every refusal: OpenAI's error object with the right status, naming what is wrong.
TEST_F(HttpServerTest, RefusalsHaveTheirStatusAndOpenAiErrorObject) {
  ServerOptions options;
  options.api_key = "sekret-key";
  options.max_body_bytes = 4096;
  options.scheduler.max_prompt_tokens = 20;
  Running running = start(options);
  httplib::Client client = running.client();
  const httplib::Headers auth = {{"Authorization", "Bearer sekret-key"}};
  auto expect_error = [](const httplib::Result& res, int status, const std::string& phrase) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    const json body = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << res->body;
    ASSERT_TRUE(body.contains("error")) << res->body;
    EXPECT_NE(body["error"]["message"].get<std::string>().find(phrase), std::string::npos) << res->body;
    EXPECT_TRUE(body["error"]["type"].is_string());
  };
  const std::string ok = greedy_request("Hi", 2).dump();
  expect_error(client.Post("/v1/chat/completions", ok, "application/json"), 401, "missing API key");
  expect_error(client.Post("/v1/chat/completions", {{"Authorization", "Bearer wrong"}}, ok, "application/json"), 401, "wrong API key");
  EXPECT_EQ(client.Get("/health")->status, 200);  // load balancers probe without the key
  expect_error(client.Get("/v1/nothing", auth), 404, "no route");
  expect_error(client.Post("/v1/chat/completions", auth, std::string(8192, 'x'), "application/json"), 413, "larger than");
  expect_error(client.Post("/v1/chat/completions", auth, "{not json", "application/json"), 400, "not valid JSON");
  expect_error(client.Post("/v1/chat/completions", auth, R"({"messages": "hi"})", "application/json"), 400, "messages");
  expect_error(client.Post("/v1/chat/completions", auth, greedy_request(std::string(300, 'a'), 2).dump(), "application/json"), 400,
               "limit of 20");
  json two = greedy_request("Hi", 2);
  two["n"] = 2;
  expect_error(client.Post("/v1/chat/completions", auth, two.dump(), "application/json"), 400, "n");
  json remote = {{"messages", json::array({{{"role", "user"},
                                             {"content", json::array({{{"type", "image_url"}, {"image_url", {{"url", "https://example.com/a.png"}}}}})}}})}};
  expect_error(client.Post("/v1/chat/completions", auth, remote.dump(), "application/json"), 400, "does not fetch");
  const auto fine = client.Post("/v1/chat/completions", auth, ok, "application/json");
  ASSERT_TRUE(fine);
  EXPECT_EQ(fine->status, 200) << fine->body;
}

// A prompt longer than the context is a 400 with OpenAI's code, before any model work.
TEST_F(HttpServerTest, PromptOverTheContextIs400) {
  ServerOptions options;
  options.scheduler.conversation.context_length = 16;
  Running running = start(options);
  httplib::Client client = running.client();
  const auto res = client.Post("/v1/chat/completions", greedy_request("Write one sentence about the sea, please, now.", 4).dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "context_length_exceeded");
}

// A streaming client that disconnects frees its slot at once: the next request runs.
TEST_F(HttpServerTest, DisconnectedStreamIsCancelled) {
  ServerOptions options;
  options.scheduler.parallel = 1;
  options.scheduler.max_queue = 0;
  options.request.max_tokens_cap = 100000;
  options.scheduler.conversation.context_length = 100000;
  Running running = start(options);
  json request = greedy_request("Hello", 90000);
  request["stream"] = true;
  const std::string body = request.dump();
  const std::string http_request = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                                   std::to_string(body.size()) + "\r\n\r\n" + body;
  const std::string partial = raw_exchange(running.port, http_request, 1500ms);  // reads 1.5 s of events, then hangs up
  EXPECT_NE(partial.find("chat.completion.chunk"), std::string::npos);
  httplib::Client client = running.client();
  // While the abandoned generation ran, a second request would get 429 (one slot, no queue).
  std::int64_t active = 1;
  for (int i = 0; i < 50 && active != 0; ++i) {
    std::this_thread::sleep_for(100ms);
    active = metric_value(client, "q3vl_active_sequences");
  }
  EXPECT_EQ(active, 0) << "the disconnected stream still generates";
  const auto next = client.Post("/v1/chat/completions", greedy_request("Hi", 2).dump(), "application/json");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200) << next->body;
}

// One slot and no queue: a second concurrent request is told to retry (429 with Retry-After).
TEST_F(HttpServerTest, FullQueueIs429WithRetryAfter) {
  ServerOptions options;
  options.scheduler.parallel = 1;
  options.scheduler.max_queue = 0;
  Running running = start(options);
  std::thread busy([&] {
    httplib::Client c = running.client();
    c.Post("/v1/chat/completions", greedy_request("Hello", 400).dump(), "application/json");
  });
  httplib::Client client = running.client();
  std::int64_t active = 0;
  for (int i = 0; i < 100 && active != 1; ++i) {
    std::this_thread::sleep_for(20ms);
    active = metric_value(client, "q3vl_active_sequences");
  }
  const auto refused = client.Post("/v1/chat/completions", greedy_request("Hi", 2).dump(), "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429);
  EXPECT_EQ(refused->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(refused->body)["error"]["type"], "rate_limit_error");
  busy.join();
}

std::string base64(const std::string& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    for (int k = 3; k >= 0; --k) out += alphabet[(v >> (6 * k)) & 63];
  }
  if (i < bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

json user_parts(json parts) { return json::array({{{"role", "user"}, {"content", std::move(parts)}}}); }

// A clip as a video_url data URL: HF's greedy text for the video fixture (decoded in-process from
// the server's scratch copy, which is gone afterwards).
TEST_F(HttpServerTest, VideoDataUrlGivesHfText) {
  Running running = start();
  httplib::Client client = running.client();
  const json manifest = json::parse(std::ifstream(test::source_dir() / "tests/fixtures/video/manifest.json"));
  const json& c = manifest["cases"]["video_only"];
  const std::filesystem::path clip = test::source_dir() / "tests/fixtures/video" / c["dir"].get<std::string>() / c["media"][0]["file"].get<std::string>();
  const std::int64_t tokens = static_cast<std::int64_t>(
      read_npy(test::source_dir() / "tests/fixtures/video" / c["dir"].get<std::string>() / "generated_ids.npy").as_int64().size());
  const json request = {{"messages", user_parts({{{"type", "video_url"}, {"video_url", {{"url", "data:video/x-msvideo;base64," + base64(file_bytes(clip))}}}},
                                                 {{"type", "text"}, {"text", c["text"]}}})},
                        {"temperature", 0},
                        {"max_tokens", tokens}};
  const auto res = client.Post("/v1/chat/completions", request.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["choices"][0]["message"]["content"], c["generated_text"]);
  int left = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir().path())) {
    if (entry.path().filename().string().rfind("q3vl-video-", 0) == 0) ++left;
  }
  EXPECT_EQ(left, 0) << "the request's scratch copy of the clip was not removed";
}

// Images by path under --allowed-media-dir (and nowhere else), and the per-request pixel budget.
TEST_F(HttpServerTest, AllowedMediaFolderAndPerRequestPixelBudget) {
  const test::GoldenCase c = test::golden_case("full_image_system");
  const std::filesystem::path media = dir().path() / "media";
  std::filesystem::create_directories(media);
  std::filesystem::copy_file(test::golden_dir() / c.entry["dir"].get<std::string>() / "image0.png", media / "photo.png",
                             std::filesystem::copy_options::overwrite_existing);
  ServerOptions options;
  options.scheduler.media.allowed_media_dir = std::filesystem::canonical(media);
  Running running = start(options);
  httplib::Client client = running.client();
  json request = {{"messages", c.entry["messages"]}, {"temperature", 0}, {"max_tokens", 32}};
  request["messages"][1]["content"][0] = {{"type", "image_url"}, {"image_url", {{"url", "photo.png"}}}};
  const auto res = client.Post("/v1/chat/completions", request.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json body = json::parse(res->body);
  EXPECT_EQ(body["choices"][0]["message"]["content"], c.entry["greedy"]["decoded_text"]);
  EXPECT_EQ(body["usage"]["prompt_tokens"], c.entry["sequence_length"]);
  // The smallest budget (one 32x32 token) shrinks the image's tokens.
  request["max_pixels"] = 1024;
  request["min_pixels"] = 1024;
  const auto small = client.Post("/v1/chat/completions", request.dump(), "application/json");
  ASSERT_TRUE(small);
  ASSERT_EQ(small->status, 200) << small->body;
  const std::int64_t image_tokens = c.entry["images"][0]["num_image_tokens"];
  EXPECT_EQ(json::parse(small->body)["usage"]["prompt_tokens"], c.entry["sequence_length"].get<std::int64_t>() - image_tokens + 1);
  // Outside the folder: refused, without saying what exists there.
  request.erase("max_pixels");
  request.erase("min_pixels");
  for (const char* url : {"../pkg/q3vl_package.json", "/etc/passwd", "file:///etc/passwd"}) {
    request["messages"][1]["content"][0]["image_url"]["url"] = url;
    const auto refused = client.Post("/v1/chat/completions", request.dump(), "application/json");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 400) << url;
    EXPECT_EQ(refused->body.find("root:"), std::string::npos);
  }
}

// The server's per-image budget (--max-image-pixels) caps every image and refuses a larger ask.
TEST_F(HttpServerTest, ServerImageBudgetCapsAndRefusesLargerAsks) {
  const test::GoldenCase c = test::golden_case("full_image_system");
  const std::int64_t per_token = model()->pixels_per_image_token();
  ServerOptions options;
  options.scheduler.reply.max_image_pixels = 2 * per_token;
  Running running = start(options);
  httplib::Client client = running.client();
  json request = {{"messages", c.entry["messages"]}, {"temperature", 0}, {"max_tokens", 2}};
  request["messages"][1]["content"][0] = {
      {"type", "image_url"},
      {"image_url", {{"url", "data:image/png;base64," + base64(file_bytes(test::golden_dir() / c.entry["dir"].get<std::string>() / "image0.png"))}}}};
  const auto capped = client.Post("/v1/chat/completions", request.dump(), "application/json");
  ASSERT_TRUE(capped);
  ASSERT_EQ(capped->status, 200) << capped->body;
  const std::int64_t image_tokens = c.entry["images"][0]["num_image_tokens"];
  ASSERT_GT(image_tokens, 2);
  EXPECT_LE(json::parse(capped->body)["usage"]["prompt_tokens"].get<std::int64_t>(), c.entry["sequence_length"].get<std::int64_t>() - image_tokens + 2);
  request["max_pixels"] = 3 * per_token;
  const auto refused = client.Post("/v1/chat/completions", request.dump(), "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400);
  EXPECT_EQ(json::parse(refused->body)["error"]["param"], "max_pixels");
}

// A request past --request-timeout is cancelled and answered 504.
TEST_F(HttpServerTest, RequestTimeoutIs504) {
  ServerOptions options;
  options.request_timeout_s = 1;
  Running running = start(options);
  httplib::Client client = running.client();
  const auto start_time = std::chrono::steady_clock::now();
  const auto res = client.Post("/v1/chat/completions", greedy_request("Hello", 4000).dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 504) << res->body;
  EXPECT_LT(std::chrono::steady_clock::now() - start_time, 10s);
  // The generation stops at its next token (the handler answered at the deadline already).
  std::int64_t active = 1;
  for (int i = 0; i < 100 && active != 0; ++i) {
    active = metric_value(client, "q3vl_active_sequences");
    if (active != 0) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(active, 0);
}

// Bytes that are not HTTP, or HTTP that lies, get an error or a closed connection; the server goes on.
TEST_F(HttpServerTest, MalformedHttpIsRefusedAndTheServerGoesOn) {
  Running running = start();
  const std::vector<std::string> hostile = {
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  // a TLS ClientHello on the plain port
      "GARBAGE\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n",
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\":",  // shorter than announced
      "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /health HTTP/1.1\r\n" + std::string(9000, 'X') + ": y\r\n\r\n",
  };
  for (const std::string& bytes : hostile) {
    const std::string reply = raw_exchange(running.port, bytes, 1000ms);
    if (!reply.empty()) {
      EXPECT_EQ(reply.find("HTTP/1.1 200"), std::string::npos) << "accepted: " << bytes.substr(0, 60);
    }
  }
  httplib::Client client = running.client();
  const auto health = client.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

// Shutdown: an in-flight request finishes; new ones are refused.
TEST_F(HttpServerTest, ShutdownFinishesInFlightRequests) {
  ServerOptions options;
  options.shutdown_timeout_s = 600;  // sanitizer builds are slow; the request must finish, not be cut
  Running running = start(options);
  std::optional<int> status;
  std::string content;
  std::thread in_flight([&] {
    httplib::Client c = running.client();
    const auto res = c.Post("/v1/chat/completions", greedy_request("Hello", 1500).dump(), "application/json");
    if (res) {
      status = res->status;
      content = res->body;
    }
  });
  httplib::Client client = running.client();
  for (int i = 0; i < 100 && metric_value(client, "q3vl_active_sequences") != 1; ++i) std::this_thread::sleep_for(20ms);
  running.server->shutdown();
  in_flight.join();
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 200) << content;
  EXPECT_FALSE(client.Get("/health")) << "still listening after shutdown";
}

}  // namespace
}  // namespace q3vl::server
