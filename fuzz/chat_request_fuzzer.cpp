// libFuzzer target for what an HTTP client posts to /v1/chat/completions: arbitrary bytes as the
// request body, then every image or video data: URL the request holds through the data-URL parser
// and the strict base64 decoder. Each input must parse or be refused with an ApiError (the 400 the
// client gets back) whose message serialises as JSON; another exception, a crash or a sanitizer
// report is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "server/api_error.h"
#include "server/chat_request.h"
#include "server/media_source.h"

namespace {

void check_message(const q3vl::server::ApiError& error) {
  (void)nlohmann::json(error.what()).dump();  // throws on invalid UTF-8: not an error a client can read
  if (error.status() < 400 || error.status() > 599) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  q3vl::server::RequestLimits limits;
  limits.max_media_items = 4;
  q3vl::server::ChatRequest request;
  try {
    request = q3vl::server::parse_chat_request(body, limits);
  } catch (const q3vl::server::ApiError& error) {
    check_message(error);
    return 0;
  }
  for (const q3vl::server::RequestMessage& message : request.messages) {
    for (const q3vl::server::RequestPart& part : message.content) {
      if (part.kind == q3vl::server::RequestPart::Kind::Text) continue;
      try {
        const q3vl::server::DataUrl url = q3vl::server::parse_data_url(part.text, 1 << 20, "url");
        if (url.bytes.size() > (1u << 20)) __builtin_trap();
      } catch (const q3vl::server::ApiError& error) {
        check_message(error);
      }
      (void)q3vl::server::decode_base64(part.text);
    }
  }
  return 0;
}
