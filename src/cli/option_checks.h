#pragma once
// CLI11 validators for option values. A failed check is a usage error: CLI11 reports it naming the
// option and main() exits with 2, before any file is read.
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <string>

#include <CLI/CLI.hpp>

namespace q3vl::cli {

// A finite number in [low, high], or in (low, high] when low_open (e.g. a temperature > 0).
// CLI::Range lets NaN through (every comparison with NaN is false), so this checks it explicitly.
inline CLI::Validator finite_range(double low, double high, bool low_open = false) {
  auto number = [](double v) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", v);
    return std::string(text);
  };
  const std::string description = std::string(low_open ? "(" : "[") + number(low) + ", " + number(high) + "]";
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value)) return "not a number: " + text;
        if (!std::isfinite(value)) return "must be a finite number, not " + text;
        if (value < low || value > high || (low_open && value == low)) return "value " + text + " not in " + description;
        return {};
      },
      "NUMBER in " + description);
}

// An integer in [low, high] (the option's type rejects fractions and overflow).
inline CLI::Validator integer_range(std::int64_t low, std::int64_t high) {
  return CLI::Range(low, high);
}

// A non-negative integer written in decimal digits: CLI11 would wrap "-1" around to 2^64-1.
inline CLI::Validator unsigned_integer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
          return "must be a non-negative integer, not " + text;
        }
        return {};
      },
      "UINT");
}

}  // namespace q3vl::cli
