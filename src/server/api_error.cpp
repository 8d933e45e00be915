#include "server/api_error.h"

#include "text/utf8.h"

namespace q3vl::server {

std::string ApiError::type() const {
  // OpenAI's classes: 404 and 413 stay invalid_request_error, as OpenAI reports them.
  if (status_ == 401) return "authentication_error";
  if (status_ == 429) return "rate_limit_error";
  if (status_ >= 500) return "server_error";
  return "invalid_request_error";
}

std::string message_excerpt(std::string_view text, std::size_t max_bytes) {
  std::size_t end = 0;
  bool cut = false;
  while (end < text.size()) {
    const utf8::Sequence sequence = utf8::next_sequence(text, end);
    if (end + sequence.length > max_bytes) {
      cut = true;
      break;
    }
    end += sequence.length;
  }
  std::string out;
  utf8::append_lossy(text.substr(0, end), /*final=*/true, out);
  if (cut) out += "...";
  return out;
}

std::string quoted_excerpt(std::string_view text, std::size_t max_bytes) {
  std::string out(1, '\'');  // appended, not "'" + string: GCC 12 warns falsely (-Wrestrict) on that
  out += message_excerpt(text, max_bytes);
  out += '\'';
  return out;
}

}  // namespace q3vl::server
