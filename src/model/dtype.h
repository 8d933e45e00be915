#pragma once
// Element types of checkpoint tensors, named as in the safetensors format.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace q3vl {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool, F8E4M3, F8E5M2 };

std::size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);
std::optional<DType> dtype_from_name(std::string_view name);

// Product of the dims, or nullopt if a dim is negative or the product overflows int64.
std::optional<std::int64_t> checked_element_count(std::span<const std::int64_t> shape);

std::string shape_string(std::span<const std::int64_t> shape);

}  // namespace q3vl
