#include <gtest/gtest.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "math/half_float.h"
#include "model/safetensors.h"
#include "q3vl/error.h"
#include "support/test_support.h"

namespace q3vl {
namespace {

std::string file_with_header(const std::string& header, std::size_t data_bytes) {
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>(n >> (8 * i));
  return out + header + std::string(data_bytes, '\x01');
}

void expect_header_error(const std::string& file, const std::string& needle) {
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(file.data()), file.size());
  try {
    parse_safetensors_header(bytes, "weights.safetensors");
    FAIL() << "accepted a bad header; expected an error containing: " << needle;
  } catch (const InvalidInput& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("weights.safetensors"), std::string::npos) << message;
    EXPECT_NE(message.find(needle), std::string::npos) << message;
  }
}

TEST(Safetensors, WriterOutputReadsBackWithValues) {
  test::TempDir dir;
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -0.5f};
  std::vector<std::uint16_t> b;
  for (float x : {0.1f, 0.2f, 0.3f}) b.push_back(float_to_bf16(x));
  {
    SafetensorsWriter writer(dir / "w.safetensors",
                             {{"a", DType::F32, {2, 3}}, {"empty", DType::F16, {0}}, {"b", DType::BF16, {3}}});
    // Write "a" in two pieces and "b" in one, as a streaming producer would.
    writer.write({reinterpret_cast<const std::uint8_t*>(a.data()), 8});
    writer.write({reinterpret_cast<const std::uint8_t*>(a.data()) + 8, a.size() * 4 - 8});
    writer.write({reinterpret_cast<const std::uint8_t*>(b.data()), b.size() * 2});
    writer.finish();
  }
  SafetensorsFile file(dir / "w.safetensors");
  ASSERT_EQ(file.tensors().size(), 3u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const TensorInfo* info_a = file.find("a");
  ASSERT_NE(info_a, nullptr);
  EXPECT_EQ(info_a->shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(read_as_float(file.view(*info_a)), a);
  const std::vector<float> read_b = read_as_float(file.view(*file.find("b")));
  for (std::size_t i = 0; i < b.size(); ++i) EXPECT_EQ(read_b[i], bf16_to_float(b[i]));
  std::vector<float> tail(2);
  read_as_float(file.view(*info_a), 4, tail);
  EXPECT_EQ(tail, (std::vector<float>{7.0f, -0.5f}));
  EXPECT_THROW(read_as_float(file.view(*info_a), 5, tail), Error);
}

TEST(Safetensors, UnfinishedWriterLeavesNoFile) {
  test::TempDir dir;
  {
    SafetensorsWriter writer(dir / "w.safetensors", {{"a", DType::F32, {4}}});
    const float x = 1.0f;
    writer.write({reinterpret_cast<const std::uint8_t*>(&x), 4});
    EXPECT_THROW(writer.finish(), Error);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "w.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir / "w.safetensors.partial"));
}

TEST(Safetensors, RejectsCorruptHeadersWithClearErrors) {
  const std::string good = R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})";
  {
    const std::string f = file_with_header(good, 8);
    const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(f.data()), f.size());
    EXPECT_EQ(parse_safetensors_header(bytes, "ok").tensors.size(), 1u);
  }
  expect_header_error("", "too small");
  expect_header_error(std::string("\x05\0\0\0", 4), "too small");
  expect_header_error(file_with_header(good, 8).substr(0, 20), "exceeds the file size");
  expect_header_error(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "exceeds the file size");
  expect_header_error(file_with_header("{\"t\": [", 0), "not valid JSON");
  expect_header_error(file_with_header("[1, 2]", 0), "not a JSON object");
  expect_header_error(file_with_header(R"({"t": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}})", 8), "unknown dtype");
  expect_header_error(file_with_header(R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8), "\"t\"");
  expect_header_error(file_with_header(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})", 8), "truncated");
  expect_header_error(file_with_header(R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8), "does not match");
  expect_header_error(file_with_header(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8), "data_offsets");
  expect_header_error(file_with_header(R"({"t": {"dtype": "F32", "shape": [2]}})", 8), "data_offsets");
  expect_header_error(
      file_with_header(R"({"t": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 8]}})", 8),
      "does not match");
  expect_header_error(file_with_header(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                                           "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}})", 8),
                      "overlap");
  expect_header_error(file_with_header(R"({"__metadata__": {"format": 1}})", 0), "__metadata__");
  // A number too large for a double is a JSON error too (found by the fuzzer).
  expect_header_error(file_with_header(R"({"t": {"dtype": "F32", "shape": [6E4394183], "data_offsets": [0, 8]}})", 8),
                      "not valid JSON");
}

TEST(Safetensors, MissingFileNamesThePath) {
  try {
    SafetensorsFile file("/nonexistent/q3vl.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/q3vl.safetensors"), std::string::npos);
  }
}

}  // namespace
}  // namespace q3vl
