#pragma once
// Stop strings over streamed text: text is released only once it can no longer be the start of
// a stop string, so the caller never prints part of one.
#include <string>
#include <string_view>
#include <vector>

namespace q3vl {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);

  // Adds generated text; returns what is safe to emit now.
  std::string push(std::string_view text);
  // True once a stop string has appeared (the text before it has been emitted).
  bool stopped() const { return stopped_; }
  // At the end of generation: whatever was held back.
  std::string flush();

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace q3vl
