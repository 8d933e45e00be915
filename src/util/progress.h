#pragma once
// A one-line progress bar on stderr for long jobs (exports, large random checkpoints). On a
// terminal it redraws in place; otherwise it prints a line every 10%.
#include <cstdint>
#include <string>

namespace q3vl {

class ProgressBar {
 public:
  ProgressBar(std::string label, std::uint64_t total_bytes, bool enabled = true);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void advance(std::uint64_t bytes);
  void finish();

 private:
  void draw();

  std::string label_;
  std::uint64_t total_;
  std::uint64_t done_ = 0;
  int last_shown_ = -1;
  bool enabled_;
  bool tty_;
  bool finished_ = false;
};

std::string format_bytes(std::uint64_t bytes);

}  // namespace q3vl
