#include "cli/process_clock.h"

#include <time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace q3vl::cli {

double ms_since_process_start() {
  // Field 22 of /proc/self/stat is the start time in clock ticks since boot; the command name
  // (field 2) may hold spaces, so count fields from its closing parenthesis.
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (!std::getline(stat, line)) return 0;
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  for (int i = 3; i < 22 && fields >> field; ++i) {
  }
  unsigned long long start_ticks = 0;
  if (!(fields >> start_ticks)) return 0;
  const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  timespec now{};
  if (ticks_per_second <= 0 || ::clock_gettime(CLOCK_BOOTTIME, &now) != 0) return 0;
  const double now_ms = static_cast<double>(now.tv_sec) * 1000.0 + static_cast<double>(now.tv_nsec) / 1e6;
  const double start_ms = static_cast<double>(start_ticks) * 1000.0 / static_cast<double>(ticks_per_second);
  return now_ms > start_ms ? now_ms - start_ms : 0;
}

}  // namespace q3vl::cli
