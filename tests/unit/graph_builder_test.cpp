#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>

#include <onnxruntime_cxx_api.h>

#include "graph/graph_builder.h"
#include "q3vl/error.h"
#include "support/test_support.h"

namespace q3vl::graph {
namespace {

namespace fs = std::filesystem;

std::vector<float> run_single_output(const fs::path& model, const std::vector<float>& x, std::int64_t rows,
                                     std::int64_t cols) {
  Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "q3vl-test");
  Ort::SessionOptions options;
  options.SetIntraOpNumThreads(1);
  Ort::Session session(env, model.c_str(), options);
  const Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  const std::array<std::int64_t, 2> shape = {rows, cols};
  Ort::Value input = Ort::Value::CreateTensor<float>(memory, const_cast<float*>(x.data()), x.size(),
                                                     shape.data(), shape.size());
  const char* input_names[] = {"x"};
  const char* output_names[] = {"y"};
  auto outputs = session.Run(Ort::RunOptions{nullptr}, input_names, &input, 1, output_names, 1);
  const float* y = outputs[0].GetTensorData<float>();
  return {y, y + outputs[0].GetTensorTypeAndShapeInfo().GetElementCount()};
}

// y = gelu_erf(x W + b) with W [K, N] in external data and b inline; Gelu is com.microsoft's.
TEST(GraphBuilder, ExternalWeightsAndContribOpsRunInOnnxRuntime) {
  test::TempDir dir;
  constexpr std::int64_t K = 64;
  constexpr std::int64_t N = 48;
  std::vector<float> w(K * N);
  std::vector<float> b(N);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::sin(static_cast<float>(i) * 0.37f) * 0.2f;
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = std::cos(static_cast<float>(i)) * 0.1f;
  {
    ExternalDataWriter external(dir / "model.onnx.data", "model.onnx.data");
    GraphBuilder g("test", {}, &external);
    const std::string x = g.input("x", kFloat, {std::string("rows"), K});
    const std::string weight = g.initializer("w", {K, N}, w);
    const std::string bias = g.initializer("b", {N}, b);
    const std::string y = g.op("Gelu", {g.op("Add", {g.op("MatMul", {x, weight}), bias})}, {}, kMicrosoftDomain);
    g.output(y, "y", kFloat, {std::string("rows"), N});
    external.close();
    g.save(dir / "model.onnx");
    // The weight lives in the side file, the small bias inline.
    EXPECT_LT(fs::file_size(dir / "model.onnx"), 2048u);
    EXPECT_GE(fs::file_size(dir / "model.onnx.data"), static_cast<std::uintmax_t>(K * N * 4));
    EXPECT_EQ(g.graph().initializer(0).data_location(), onnx::TensorProto_DataLocation_EXTERNAL);
    EXPECT_EQ(g.graph().initializer(1).data_location(), onnx::TensorProto_DataLocation_DEFAULT);
  }
  constexpr std::int64_t rows = 3;
  std::vector<float> x(rows * K);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::cos(static_cast<float>(i) * 0.11f);
  const std::vector<float> y = run_single_output(dir / "model.onnx", x, rows, K);
  ASSERT_EQ(y.size(), static_cast<std::size_t>(rows * N));
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t n = 0; n < N; ++n) {
      double acc = b[static_cast<std::size_t>(n)];
      for (std::int64_t k = 0; k < K; ++k) acc += static_cast<double>(x[static_cast<std::size_t>(r * K + k)]) * w[static_cast<std::size_t>(k * N + n)];
      const double expected = 0.5 * acc * (1.0 + std::erf(acc / std::sqrt(2.0)));
      EXPECT_NEAR(y[static_cast<std::size_t>(r * N + n)], expected, 1e-5) << r << "," << n;
    }
  }
}

TEST(GraphBuilder, StreamedInitializersAreWrittenInPieces) {
  test::TempDir dir;
  constexpr std::int64_t K = 1000;
  {
    ExternalDataWriter external(dir / "m.data", "m.data");
    GraphBuilder g("streamed", {}, &external);
    const std::string x = g.input("x", kFloat, {1, K});
    const std::string scale = g.streamed_initializer("scale", kFloat, {1, K});
    for (std::int64_t start = 0; start < K; start += 300) {  // pieces of 300 values: 2 * (i+1) each
      std::vector<float> piece;
      for (std::int64_t i = start; i < std::min(K, start + 300); ++i) piece.push_back(2.0f * static_cast<float>(i + 1));
      external.append_piece({reinterpret_cast<const std::uint8_t*>(piece.data()), piece.size() * 4});
    }
    g.output(g.op("Mul", {x, scale}), "y", kFloat, {1, K});
    external.close();
    g.save(dir / "m.onnx");
  }
  std::vector<float> x(K, 0.5f);
  const std::vector<float> y = run_single_output(dir / "m.onnx", x, 1, K);
  for (std::int64_t i = 0; i < K; ++i) EXPECT_EQ(y[static_cast<std::size_t>(i)], static_cast<float>(i + 1));
}

// The writer holds bytes back until it has a whole 2 MB block (the page cache then keeps the file
// in 2 MB pages): tensors that start and end inside blocks, in pieces across block edges, and a last
// partial block must all land where the ranges say, with the alignment's zeros between them.
TEST(ExternalDataWriter, TensorsAcrossTwoMegabyteBlocksLandWhereTheirRangesSay) {
  test::TempDir dir;
  const auto bytes_of = [](std::size_t count, std::uint32_t seed) {
    std::vector<std::uint8_t> v(count);
    for (std::size_t i = 0; i < count; ++i) v[i] = static_cast<std::uint8_t>((i * 2654435761u + seed) >> 13);
    return v;
  };
  const std::vector<std::uint8_t> small = bytes_of(1000, 1), large = bytes_of((5u << 20) + 123, 2), pieces = bytes_of(3u << 20, 3);
  std::vector<ExternalDataWriter::Range> ranges;
  {
    ExternalDataWriter external(dir / "w.data", "w.data");
    ranges.push_back(external.append(small));
    ranges.push_back(external.append(large));
    ranges.push_back(external.begin_tensor(pieces.size()));
    for (std::size_t at = 0; at < pieces.size(); at += 700001) {
      external.append_piece({pieces.data() + at, std::min<std::size_t>(700001, pieces.size() - at)});
    }
    ranges.push_back(external.append(small));
    external.close();
    EXPECT_EQ(external.size(), ranges.back().offset + small.size());
  }
  std::ifstream in(dir / "w.data", std::ios::binary);
  const std::vector<std::uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(file.size(), ranges.back().offset + small.size());
  const std::vector<std::uint8_t>* expected[] = {&small, &large, &pieces, &small};
  std::uint64_t end = 0;
  for (std::size_t t = 0; t < 4; ++t) {
    EXPECT_EQ(ranges[t].offset % 4096, 0u);
    ASSERT_EQ(ranges[t].length, expected[t]->size());
    for (std::uint64_t i = end; i < ranges[t].offset; ++i) ASSERT_EQ(file[i], 0) << "padding at " << i;
    EXPECT_TRUE(std::equal(expected[t]->begin(), expected[t]->end(), file.begin() + static_cast<std::ptrdiff_t>(ranges[t].offset))) << "tensor " << t;
    end = ranges[t].offset + ranges[t].length;
  }
}

TEST(GraphBuilder, RejectsMismatchedInitializerBytes) {
  GraphBuilder g("bad");
  const std::vector<float> three = {1, 2, 3};
  EXPECT_THROW(g.initializer("w", {2, 2}, three), Error);
}

TEST(GraphBuilder, SaveIntoAMissingFolderFailsWithoutLeavingFiles) {
  test::TempDir dir;
  GraphBuilder g("m");
  g.output(g.input("x", kFloat, {1}), "x", kFloat, {1});
  EXPECT_THROW(g.save(dir / "missing" / "m.onnx"), Error);
  EXPECT_FALSE(fs::exists(dir / "missing"));
}

}  // namespace
}  // namespace q3vl::graph
