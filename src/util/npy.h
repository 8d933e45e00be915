#pragma once
// NumPy .npy files (format 1.0/2.0, little-endian, C order): the exchange format of the golden
// fixtures and of `--dump`, so results compare directly with Python.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace q3vl {

struct NpyArray {
  std::string descr;  // "<f4", "<i8", ...
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> data;

  std::int64_t element_count() const;
  // Typed copies; throw q3vl::Error if the dtype differs.
  std::vector<float> as_float() const;
  std::vector<std::int64_t> as_int64() const;
  std::vector<double> as_double() const;
};

NpyArray read_npy(const std::filesystem::path& path);
NpyArray parse_npy(std::span<const std::uint8_t> bytes, const std::string& label);

void write_npy(const std::filesystem::path& path, std::span<const float> values, const std::vector<std::int64_t>& shape);
void write_npy(const std::filesystem::path& path, std::span<const std::int64_t> values,
               const std::vector<std::int64_t>& shape);
void write_npy(const std::filesystem::path& path, std::span<const double> values, const std::vector<std::int64_t>& shape);

}  // namespace q3vl
