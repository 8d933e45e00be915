#include <gtest/gtest.h>

#include "q3vl/error.h"
#include "support/test_support.h"
#include "util/files.h"
#include "util/npy.h"

namespace q3vl {
namespace {

TEST(Npy, RoundTripsFloatAndInt64) {
  test::TempDir dir;
  const std::vector<float> f = {1.0f, -2.5f, 3.0f, 4.0f, 5.0f, 6.0f};
  write_npy(dir / "f.npy", std::span<const float>(f), {2, 3});
  const NpyArray a = read_npy(dir / "f.npy");
  EXPECT_EQ(a.descr, "<f4");
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(a.as_float(), f);
  EXPECT_THROW(a.as_int64(), Error);

  const std::vector<std::int64_t> i = {7, -8, 9};
  write_npy(dir / "i.npy", std::span<const std::int64_t>(i), {3});
  EXPECT_EQ(read_npy(dir / "i.npy").as_int64(), i);
  write_npy(dir / "s.npy", std::span<const std::int64_t>(i.data(), 1), {});
  EXPECT_EQ(read_npy(dir / "s.npy").shape.size(), 0u);
}

TEST(Npy, RejectsTruncatedFiles) {
  test::TempDir dir;
  const std::vector<float> f(16, 1.0f);
  write_npy(dir / "f.npy", std::span<const float>(f), {16});
  const std::string bytes = read_text_file(dir / "f.npy");
  write_text_file(dir / "cut.npy", bytes.substr(0, bytes.size() - 4));
  EXPECT_THROW(read_npy(dir / "cut.npy"), InvalidInput);
  write_text_file(dir / "junk.npy", "hello");
  EXPECT_THROW(read_npy(dir / "junk.npy"), InvalidInput);
}

}  // namespace
}  // namespace q3vl
