#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace q3vl {

std::string format_bytes(std::uint64_t bytes) {
  char text[32];
  const double value = static_cast<double>(bytes);
  if (bytes >= (1ull << 30)) {
    std::snprintf(text, sizeof text, "%.2f GB", value / (1ull << 30));
  } else if (bytes >= (1ull << 20)) {
    std::snprintf(text, sizeof text, "%.1f MB", value / (1ull << 20));
  } else {
    std::snprintf(text, sizeof text, "%.1f KB", value / 1024.0);
  }
  return text;
}

ProgressBar::ProgressBar(std::string label, std::uint64_t total_bytes, bool enabled)
    : label_(std::move(label)), total_(total_bytes), enabled_(enabled), tty_(::isatty(2) != 0) {}

ProgressBar::~ProgressBar() {
  if (enabled_ && tty_ && last_shown_ >= 0 && !finished_) std::fputc('\n', stderr);
}

void ProgressBar::advance(std::uint64_t bytes) {
  done_ += bytes;
  draw();
}

void ProgressBar::finish() {
  done_ = total_;
  draw();
  if (enabled_ && tty_ && !finished_) std::fputc('\n', stderr);
  finished_ = true;
}

void ProgressBar::draw() {
  if (!enabled_ || finished_) return;
  const int percent = total_ == 0 ? 100 : static_cast<int>(100.0 * static_cast<double>(done_) /
                                                           static_cast<double>(total_));
  if (percent == last_shown_ || (!tty_ && percent / 10 == last_shown_ / 10 && last_shown_ >= 0)) return;
  last_shown_ = percent;
  constexpr int kWidth = 30;
  const int filled = percent * kWidth / 100;
  const std::string bar = std::string(static_cast<std::size_t>(filled), '#') +
                          std::string(static_cast<std::size_t>(kWidth - filled), '.');
  std::fprintf(stderr, "%s%s [%s] %3d%% %s / %s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               percent, format_bytes(done_).c_str(), format_bytes(total_).c_str(), tty_ ? "" : "\n");
  std::fflush(stderr);
}

}  // namespace q3vl
