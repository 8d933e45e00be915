#include "cli/reply_output.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace q3vl::cli {

void write_reply(std::string_view text) {
  errno = 0;
  const bool written = std::fwrite(text.data(), 1, text.size(), stdout) == text.size();
  if (!written || std::fflush(stdout) != 0) {
    const int error = errno;
    std::clearerr(stdout);  // the error is reported here, once, not again at exit
    throw OutputError(std::string("cannot write the reply to standard output: ") +
                (error != 0 ? std::strerror(error) : "write error"));
  }
}

bool finish_stdout() {
  errno = 0;
  if (std::fflush(stdout) == 0 && std::ferror(stdout) == 0) return true;
  const int error = errno;
  std::fprintf(stderr, "q3vl: error: cannot write to standard output: %s\n",
               error != 0 ? std::strerror(error) : "write error");
  return false;
}

}  // namespace q3vl::cli
