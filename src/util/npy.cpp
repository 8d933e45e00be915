#include "util/npy.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <regex>

#include "util/files.h"
#include "util/shape.h"
#include "q3vl/error.h"

namespace q3vl {
namespace {

std::size_t descr_size(const std::string& descr) {
  if (descr.size() < 3) return 0;
  try {
    return static_cast<std::size_t>(std::stoul(descr.substr(2)));
  } catch (const std::exception&) {
    return 0;
  }
}

template <typename T>
std::vector<T> copy_as(const NpyArray& array, const char* descr) {
  if (array.descr != descr) {
    throw Error("npy array has dtype " + array.descr + ", expected " + std::string(descr));
  }
  std::vector<T> out(array.data.size() / sizeof(T));
  std::memcpy(out.data(), array.data.data(), out.size() * sizeof(T));
  return out;
}

void write_raw(const std::filesystem::path& path, const char* descr, const void* data, std::size_t bytes,
               const std::vector<std::int64_t>& shape) {
  const auto count = checked_element_count(shape);
  if (!count || static_cast<std::uint64_t>(*count) * descr_size(descr) != bytes) {
    throw Error(path.string() + ": " + std::to_string(bytes) + " bytes do not fill shape " + shape_string(shape) +
                " of dtype " + descr);
  }
  std::string shape_text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    shape_text += std::to_string(shape[i]) + (shape.size() == 1 ? "," : (i + 1 < shape.size() ? ", " : ""));
  }
  shape_text += ")";
  std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': " + shape_text + ", }";
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  const std::uint16_t header_len = static_cast<std::uint16_t>(header.size());
  const std::uint8_t preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<std::uint8_t>(header_len & 0xff),
                                     static_cast<std::uint8_t>(header_len >> 8)};
  AtomicFileWriter out(path);  // a failed write leaves no truncated .npy behind
  out.write(std::span<const std::uint8_t>(preamble));
  out.write(header);
  out.write(std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(data), bytes));
  out.commit();
}

}  // namespace

std::int64_t NpyArray::element_count() const { return checked_element_count(shape).value_or(0); }
std::vector<float> NpyArray::as_float() const { return copy_as<float>(*this, "<f4"); }
std::vector<std::int64_t> NpyArray::as_int64() const { return copy_as<std::int64_t>(*this, "<i8"); }
std::vector<double> NpyArray::as_double() const { return copy_as<double>(*this, "<f8"); }

NpyArray parse_npy(std::span<const std::uint8_t> bytes, const std::string& label) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) {
    throw InvalidInput(label + ": not a .npy file");
  }
  const int major = bytes[6];
  std::size_t header_len = 0;
  std::size_t offset = 0;
  if (major == 1) {
    header_len = bytes[8] | static_cast<std::size_t>(bytes[9]) << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw InvalidInput(label + ": truncated .npy header");
    header_len = bytes[8] | static_cast<std::size_t>(bytes[9]) << 8 | static_cast<std::size_t>(bytes[10]) << 16 |
                 static_cast<std::size_t>(bytes[11]) << 24;
    offset = 12;
  } else {
    throw InvalidInput(label + ": unsupported .npy version " + std::to_string(major));
  }
  if (header_len > bytes.size() - offset) throw InvalidInput(label + ": truncated .npy header");
  const std::string header(reinterpret_cast<const char*>(bytes.data() + offset), header_len);
  std::smatch match;
  NpyArray array;
  if (!std::regex_search(header, match, std::regex("'descr':\\s*'([^']+)'"))) {
    throw InvalidInput(label + ": .npy header has no descr");
  }
  array.descr = match[1];
  if (std::regex_search(header, match, std::regex("'fortran_order':\\s*True"))) {
    throw InvalidInput(label + ": Fortran-order .npy arrays are not supported");
  }
  if (!std::regex_search(header, match, std::regex("'shape':\\s*\\(([^)]*)\\)"))) {
    throw InvalidInput(label + ": .npy header has no shape");
  }
  const std::string dims = match[1];
  const std::regex number("\\d+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), number); it != std::sregex_iterator(); ++it) {
    array.shape.push_back(std::stoll(it->str()));
  }
  const std::size_t size = descr_size(array.descr);
  const auto count = checked_element_count(array.shape);
  const std::size_t data_offset = offset + header_len;
  if (size == 0 || !count || static_cast<std::uint64_t>(*count) * size != bytes.size() - data_offset) {
    throw InvalidInput(label + ": .npy data size does not match dtype " + array.descr + " and shape " +
                       shape_string(array.shape));
  }
  array.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(data_offset), bytes.end());
  return array;
}

NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInput("cannot open " + path.string());
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_npy(bytes, path.string());
}

void write_npy(const std::filesystem::path& path, std::span<const float> values, const std::vector<std::int64_t>& shape) {
  write_raw(path, "<f4", values.data(), values.size() * sizeof(float), shape);
}

void write_npy(const std::filesystem::path& path, std::span<const std::int64_t> values,
               const std::vector<std::int64_t>& shape) {
  write_raw(path, "<i8", values.data(), values.size() * sizeof(std::int64_t), shape);
}

void write_npy(const std::filesystem::path& path, std::span<const double> values, const std::vector<std::int64_t>& shape) {
  write_raw(path, "<f8", values.data(), values.size() * sizeof(double), shape);
}

}  // namespace q3vl
