#pragma once
// Tensor shapes: element counts without overflow, and shapes in messages.
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace q3vl {

// Product of the dims, or nullopt if a dim is negative or the product overflows int64.
std::optional<std::int64_t> checked_element_count(std::span<const std::int64_t> shape);

std::string shape_string(std::span<const std::int64_t> shape);

}  // namespace q3vl
