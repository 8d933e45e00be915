#pragma once
// Errors in q3vl are exceptions that carry what went wrong and where (file, tensor, field).
// Front ends catch them and print the message; library code never prints.
#include <stdexcept>
#include <string>

namespace q3vl {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Input that is malformed or inconsistent (a corrupt file, a bad config value, a wrong shape).
class InvalidInput : public Error {
 public:
  using Error::Error;
};

// A valid request the code does not support (a MoE checkpoint, an unknown dtype).
class Unsupported : public Error {
 public:
  using Error::Error;
};

// The caller abandoned the work (ReplyOptions::cancelled); nothing is wrong with the input.
class Cancelled : public Error {
 public:
  using Error::Error;
};

}  // namespace q3vl
