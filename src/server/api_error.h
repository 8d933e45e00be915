#pragma once
// An error a request gets back as OpenAI's error object with an HTTP status:
// {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}.
#include <cstddef>
#include <string>
#include <string_view>

#include "q3vl/error.h"

namespace q3vl::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string param = {}, std::string code = {})
      : Error(message), status_(status), param_(std::move(param)), code_(std::move(code)) {}

  int status() const { return status_; }
  const std::string& param() const { return param_; }  // the offending field, "" if none
  const std::string& code() const { return code_; }    // e.g. "context_length_exceeded", "" if none
  // OpenAI's `type`: invalid_request_error (4xx but 401/429), authentication_error, rate_limit_error,
  // server_error (5xx).
  std::string type() const;

 private:
  int status_;
  std::string param_;
  std::string code_;
};

// `text` for an error message: cut at a character boundary after `max_bytes` (ending "...": a data
// URL can be megabytes) and with invalid UTF-8 replaced by U+FFFD, so the message always
// serialises as JSON.
std::string message_excerpt(std::string_view text, std::size_t max_bytes);
// The same in single quotes: `'data:image/png;base64,iVBO...'`.
std::string quoted_excerpt(std::string_view text, std::size_t max_bytes = 48);

}  // namespace q3vl::server
