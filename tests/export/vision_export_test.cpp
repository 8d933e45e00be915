// vision.onnx against Hugging Face: merged features and every DeepStack level for each golden case
// with images (two images of different sizes in one call included).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include <onnx/onnx_pb.h>

#include "export/vision_export.h"
#include "kernels/int4_matrices.h"
#include "model/checkpoint.h"
#include "package/format.h"
#include "package/kernel_graphs.h"
#include "q3vl/error.h"
#include "engine/vision_encoder.h"
#include "support/golden.h"
#include "support/graph_edits.h"
#include "support/test_support.h"

namespace q3vl {
namespace {

// Where vision_errors exports a golden model's encoder with `options`.
std::filesystem::path vision_model_dir(const test::TempDir& dir, const std::string& model, const VisionExportOptions& options) {
  return dir / (model + "-" + to_string(options.linear.format) + (options.fp16 ? "-fp16" : ""));
}

// Runs every image case of the fixtures through an exported vision model and returns, per case,
// the largest relative error over the merged features and the DeepStack levels.
std::map<std::string, double> vision_errors(const VisionExportOptions& options, const test::TempDir& dir,
                                            const char* model_file = package::kVisionModel) {
  OnnxEnvironment env;
  std::map<std::string, double> errors;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (!c.has("pixel_values")) continue;
    const auto model_dir = vision_model_dir(dir, c.model(), options);
    const Checkpoint ckpt = Checkpoint::open(c.model_dir());
    if (!std::filesystem::exists(model_dir / "vision.onnx")) {
      std::filesystem::create_directories(model_dir);
      export_vision(ckpt, options, model_dir);
    }
    VisionEncoder encoder(env, model_dir / model_file, ckpt.config());
    const std::vector<float> pixels = c.load("pixel_values").as_float();
    const std::vector<GridThw> grids = c.grids();
    const VisualFeatures out = encoder.encode(pixels, grids);
    const std::int64_t H = ckpt.config().text.hidden_size;
    const std::int64_t levels = static_cast<std::int64_t>(ckpt.config().vision.deepstack_visual_indexes.size());
    EXPECT_EQ(out.width, H * (1 + levels)) << c.name;
    const std::vector<float> merged = c.load("image_features").as_float();
    const std::vector<float> deepstack = c.load("deepstack_features").as_float();
    EXPECT_EQ(out.tokens * H, static_cast<std::int64_t>(merged.size())) << c.name;
    // The worst of the merged features and each DeepStack level, compared separately.
    const SplitVisualFeatures ours = split_visual_features(out, H);
    double worst = test::compare(ours.merged, merged).relative();
    const std::size_t level_size = static_cast<std::size_t>(out.tokens * H);
    for (std::int64_t k = 0; k < levels; ++k) {
      worst = std::max(worst, test::compare(std::span<const float>(ours.deepstack).subspan(k * level_size, level_size),
                                            std::span<const float>(deepstack).subspan(k * level_size, level_size))
                                  .relative());
    }
    errors[c.name] = worst;
  }
  return errors;
}

TEST(VisionExport, Fp32MatchesHfOnEveryImageCaseIncludingTwoImagesOfDifferentSizes) {
  test::TempDir dir;
  const auto errors = vision_errors({}, dir);
  ASSERT_EQ(errors.size(), test::golden_cases_with_images());
  ASSERT_GE(errors.size(), 4u);
  for (const auto& [name, error] : errors) {
    EXPECT_LT(error, 1e-4) << name;
    std::printf("[ vision fp32 ] %-22s max relative error %.3g\n", name.c_str(), error);
  }
}

TEST(VisionExport, QuantizedLinearsStayCloseToHf) {
  test::TempDir dir;
  for (WeightFormat format : {WeightFormat::Int8, WeightFormat::Int4}) {
    VisionExportOptions options;
    options.linear.format = format;
    options.linear.block_size = 16;  // the tiny models' widths are 32..192
    for (const auto& [name, error] : vision_errors(options, dir)) {
      std::printf("[ vision %s ] %-22s max relative error %.3g\n", to_string(format).c_str(), name.c_str(), error);
      EXPECT_LT(error, format == WeightFormat::Int8 ? 0.05 : 0.5) << name;
    }
  }
}

// vision.kernels.onnx (int8 and int4 MatMulNBits on q3vl's ops) beside each quantized vision.onnx,
// stamped with it: the same int8 arithmetic as MatMulNBits (kernel_graph_test: ~3e-7 apart per
// layer), so as close to HF.
TEST(VisionExport, QuantizedEncodersAlsoGetAKernelGraphAsCloseToHf) {
  test::TempDir dir;
  std::size_t checked = 0;
  for (WeightFormat format : {WeightFormat::Int8, WeightFormat::Int4}) {
    VisionExportOptions options;
    options.linear.format = format;
    options.linear.block_size = 16;
    const std::map<std::string, double> plain = vision_errors(options, dir);
    const std::map<std::string, double> kernels = vision_errors(options, dir, package::kKernelVisionModel);
    ASSERT_EQ(kernels.size(), test::golden_cases_with_images());
    for (const auto& [name, error] : kernels) {
      std::printf("[ vision %s, q3vl's kernels ] %-22s max relative error %.3g (MatMulNBits %.3g)\n", to_string(format).c_str(), name.c_str(),
                  error, plain.at(name));
      // An int8 rounding of an activation can fall the other way (float sums in another order), and
      // such flips compound over the layers: close to MatMulNBits' error, not equal.
      EXPECT_LT(error, plain.at(name) * 1.2 + 0.002) << name;
      EXPECT_LT(error, format == WeightFormat::Int8 ? 0.05 : 0.5) << name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2 * test::golden_cases_with_images());
  std::size_t graphs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_TRUE(std::filesystem::exists(entry.path() / kKernelVisionStamp)) << entry.path();
    // Each block's attention is one PatchAttention (no rotation, If or MultiHeadAttention left of
    // it) and its MLP one PatchMlp (no Int8MatMul with a GELU, no FastGelu, which allocates a
    // scratch copy of its input).
    onnx::ModelProto model;
    std::ifstream in(entry.path() / package::kKernelVisionModel, std::ios::binary);
    ASSERT_TRUE(model.ParseFromIstream(&in)) << entry.path();
    const bool int8 = entry.path().string().ends_with("-int8");
    int fast_gelus = 0, gelus = 0, patch_attention = 0, patch_mlps = 0, ifs = 0, splits = 0;
    for (const onnx::NodeProto& node : model.graph().node()) {
      fast_gelus += node.op_type() == "FastGelu";
      for (const onnx::AttributeProto& a : node.attribute()) gelus += a.name() == "gelu" && a.i() == 1;
      patch_attention += node.op_type() == package::kPatchAttentionOp;
      patch_mlps += node.op_type() == package::kPatchMlpOp;
      ifs += node.op_type() == "If";
      splits += node.op_type() == "Split";
    }
    EXPECT_EQ(fast_gelus, 0) << entry.path();
    EXPECT_GT(patch_attention, 0) << entry.path();
    EXPECT_EQ(ifs, 0) << entry.path();
    // int8 qkv projections become three one-width Int8MatMul (first_row); int4 ones keep the Split.
    int first_rows = 0;
    for (const onnx::NodeProto& node : model.graph().node()) {
      for (const onnx::AttributeProto& a : node.attribute()) first_rows += a.name() == "first_row";
    }
    EXPECT_EQ(splits, int8 ? 0 : patch_attention) << entry.path();
    EXPECT_EQ(first_rows, int8 ? 3 * patch_attention : 0) << entry.path();
    // int8 MLPs fold whole; int4 ones keep their Int4MatMul pair, the GELU in the first.
    EXPECT_EQ(patch_mlps, int8 ? patch_attention : 0) << entry.path();
    EXPECT_EQ(gelus, int8 ? 0 : patch_attention) << entry.path();
    // Nothing the rewrite left unread (ONNX Runtime would warn about each at every load).
    std::set<std::string> read;
    for (const onnx::NodeProto& node : model.graph().node()) read.insert(node.input().begin(), node.input().end());
    for (const onnx::TensorProto& t : model.graph().initializer()) EXPECT_TRUE(read.contains(t.name())) << entry.path() << ": " << t.name();
    ++graphs;
  }
  EXPECT_GT(graphs, 0u);
  // A float encoder gets none.
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (!c.has("pixel_values")) continue;
    std::filesystem::create_directories(dir / "fp32");
    export_vision(Checkpoint::open(c.model_dir()), {}, dir / "fp32");
    break;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "fp32" / package::kKernelVisionModel));
}

// int8 rows padded to whole blocks: in blocks of 32, small_b's width 48 ends each row of its qkv,
// output and MLP up projections in half a block, as 4304 ends the 8B's (and every larger model's)
// vision MLP down projection. The kernel graph still takes every linear layer (no MatMulNBits left,
// one PatchMlp a block) and stays as close to HF as ONNX Runtime's MatMulNBits on the same package.
TEST(VisionExport, Int8RowsPaddedToWholeBlocksStayOnTheKernelGraph) {
  test::TempDir dir;
  VisionExportOptions options;
  options.linear.format = WeightFormat::Int8;
  options.linear.block_size = 32;
  const std::map<std::string, double> plain = vision_errors(options, dir);
  const std::map<std::string, double> kernels = vision_errors(options, dir, package::kKernelVisionModel);
  ASSERT_EQ(kernels.size(), test::golden_cases_with_images());
  for (const auto& [name, error] : kernels) {
    std::printf("[ vision int8, blocks of 32 ] %-22s max relative error %.3g (MatMulNBits %.3g)\n", name.c_str(), error, plain.at(name));
    EXPECT_LT(error, plain.at(name) * 1.2 + 0.002) << name;
    EXPECT_LT(error, 0.05) << name;
  }
  std::set<std::string> padded_models;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (!c.has("pixel_values") || padded_models.contains(c.model())) continue;
    const VisionConfig vision = Checkpoint::open(c.model_dir()).config().vision;
    if (vision.hidden_size % 32 == 0 && vision.intermediate_size % 32 == 0) continue;
    const auto path = vision_model_dir(dir, c.model(), options) / package::kKernelVisionModel;
    onnx::ModelProto model;
    std::ifstream in(path, std::ios::binary);
    ASSERT_TRUE(model.ParseFromIstream(&in)) << path;
    int matmul_nbits = 0, patch_mlps = 0;
    for (const onnx::NodeProto& node : model.graph().node()) {
      matmul_nbits += node.op_type() == "MatMulNBits";
      patch_mlps += node.op_type() == package::kPatchMlpOp;
    }
    EXPECT_EQ(matmul_nbits, 0) << path;
    EXPECT_EQ(patch_mlps, vision.depth) << path;
    padded_models.insert(c.model());
  }
  EXPECT_EQ(padded_models, std::set<std::string>{"small_b"});
}

// Video items (grid_t > 1): every frame pair is its own attention segment, next to an image, in
// one call (HF's vision tower on seeded pixel values).
TEST(VisionExport, VideoItemsMatchHf) {
  test::TempDir dir;
  OnnxEnvironment env;
  const auto& cases = test::golden_manifest()["vision_cases"];
  ASSERT_FALSE(cases.empty());
  for (const auto& [name, entry] : cases.items()) {
    const test::GoldenCase c{name, entry};
    const Checkpoint ckpt = Checkpoint::open(c.model_dir());
    export_vision(ckpt, {}, dir.path());
    VisionEncoder encoder(env, dir / "vision.onnx", ckpt.config());
    const VisualFeatures out = encoder.encode(c.load("pixel_values").as_float(), c.grids());
    const std::int64_t H = ckpt.config().text.hidden_size;
    const std::vector<float> merged = c.load("image_features").as_float();
    const std::vector<float> deepstack = c.load("deepstack_features").as_float();
    const SplitVisualFeatures ours = split_visual_features(out, H);
    const std::vector<float>& ours_merged = ours.merged;
    const std::vector<float>& ours_deepstack = ours.deepstack;
    EXPECT_LT(test::compare(ours_merged, merged).relative(), 1e-4) << name;
    EXPECT_LT(test::compare(ours_deepstack, deepstack).relative(), 1e-4) << name;
    std::printf("[ vision fp32 ] %-22s merged %.3g, deepstack %.3g\n", name.c_str(),
                test::compare(ours_merged, merged).relative(), test::compare(ours_deepstack, deepstack).relative());
  }
}

// The same video cases through the int8 kernel graph (PatchAttention: each frame pair its own
// segment): as close to HF as the images are, and close to the int8 vision.onnx (ONNX Runtime's
// per-item MultiHeadAttention) on the same weights, apart only where an activation's int8 rounding
// falls the other way (4e-7 on Zen 4, whose MLAS path rounds as q3vl does; 1.3e-3 on Zen 3's AVX2).
TEST(VisionExport, VideoItemsThroughTheKernelGraphMatchTheInt8Graph) {
  if (!kernels::int8_kernels_fast()) GTEST_SKIP() << "vision.kernels.onnx runs only where q3vl's int8 panels are fast (AVX2 and wider)";
  test::TempDir dir;
  OnnxEnvironment env;
  const auto& cases = test::golden_manifest()["vision_cases"];
  ASSERT_FALSE(cases.empty());
  std::size_t checked = 0;
  for (const auto& [name, entry] : cases.items()) {
    const test::GoldenCase c{name, entry};
    const Checkpoint ckpt = Checkpoint::open(c.model_dir());
    VisionExportOptions options;
    options.linear.format = WeightFormat::Int8;
    options.linear.block_size = 16;
    const auto model_dir = dir / name;
    std::filesystem::create_directories(model_dir);
    export_vision(ckpt, options, model_dir);
    ASSERT_TRUE(std::filesystem::exists(model_dir / package::kKernelVisionModel)) << name;
    const std::vector<float> pixels = c.load("pixel_values").as_float();
    const VisualFeatures plain = VisionEncoder(env, model_dir / package::kVisionModel, ckpt.config()).encode(pixels, c.grids());
    const VisualFeatures ours = VisionEncoder(env, model_dir / package::kKernelVisionModel, ckpt.config()).encode(pixels, c.grids());
    ASSERT_EQ(ours.data.size(), plain.data.size()) << name;
    const double apart = test::compare(ours.data, plain.data).relative();
    const SplitVisualFeatures split = split_visual_features(ours, ckpt.config().text.hidden_size);
    const double merged_error = test::compare(split.merged, c.load("image_features").as_float()).relative();
    const double deepstack_error = test::compare(split.deepstack, c.load("deepstack_features").as_float()).relative();
    std::printf("[ vision int8, video ] %-22s kernel graph against vision.onnx: %.3g apart; against HF: merged %.3g, deepstack %.3g\n",
                name.c_str(), apart, merged_error, deepstack_error);
    EXPECT_LT(apart, 5e-3) << name;  // a few int8 roundings of activations falling the other way
    EXPECT_LT(merged_error, 0.05) << name;  // the images' int8 bound (QuantizedLinearsStayCloseToHf)
    EXPECT_LT(deepstack_error, 0.05) << name;
    ++checked;
  }
  EXPECT_EQ(checked, cases.size());
}

// A PatchAttention node whose attributes disagree with its inputs fails the run with an error
// naming the op, never a crash or a read past a buffer.
TEST(VisionExport, APatchAttentionNodeThatDisagreesWithItsInputsIsAnError) {
  if (!kernels::int8_kernels_fast()) GTEST_SKIP() << "vision.kernels.onnx runs only where q3vl's int8 panels are fast (AVX2 and wider)";
  test::TempDir dir;
  OnnxEnvironment env;
  const test::GoldenCase* image = nullptr;
  const std::vector<test::GoldenCase> golden = test::golden_cases();
  for (const test::GoldenCase& c : golden) {
    if (c.has("pixel_values") && image == nullptr) image = &c;
  }
  ASSERT_NE(image, nullptr);
  const Checkpoint ckpt = Checkpoint::open(image->model_dir());
  VisionExportOptions options;
  options.linear.format = WeightFormat::Int8;
  options.linear.block_size = 16;
  export_vision(ckpt, options, dir.path());
  const std::int64_t heads = ckpt.config().vision.num_heads;
  const std::vector<std::pair<test::GraphEdit, std::string>> cases = {
      {test::set_attribute(package::kPatchAttentionOp, "num_heads", 0), "PatchAttention: num_heads 0"},
      {test::set_attribute(package::kPatchAttentionOp, "num_heads", -heads), "must be positive"},
      {test::set_attribute(package::kPatchAttentionOp, "num_heads", 1000003), "PatchAttention: query"},
  };
  int edited = 0;
  const auto run = [&](const test::GraphEdit& edit) {
    onnx::ModelProto model;
    {
      std::ifstream in(dir / package::kKernelVisionModel, std::ios::binary);
      ASSERT_TRUE(model.ParseFromIstream(&in));
    }
    edit(model);
    const auto path = dir / ("edited" + std::to_string(edited++) + ".onnx");  // beside vision.onnx.data, which it reads
    {
      std::ofstream out(path, std::ios::binary);
      ASSERT_TRUE(model.SerializeToOstream(&out));
    }
    VisionEncoder(env, path, ckpt.config()).encode(image->load("pixel_values").as_float(), image->grids());
  };
  EXPECT_EQ(test::expect_errors(cases, run), cases.size());
}

// The encoder's memory use is its own whatever the caller's options: an arena shrunk after each
// run, and runs after a shrink give the same features bit for bit.
TEST(VisionExport, EncoderRunsOnAnArenaShrunkAfterEachRun) {
  test::TempDir dir;
  OnnxEnvironment env;
  const std::vector<test::GoldenCase> cases = test::golden_cases();
  const auto with_image = std::find_if(cases.begin(), cases.end(), [](const test::GoldenCase& g) { return g.has("pixel_values"); });
  ASSERT_NE(with_image, cases.end());
  const test::GoldenCase& c = *with_image;
  const Checkpoint ckpt = Checkpoint::open(c.model_dir());
  export_vision(ckpt, {}, dir.path());
  SessionOptions without_arena;
  without_arena.memory_arena = false;
  const VisionEncoder encoder(env, dir / "vision.onnx", ckpt.config(), without_arena);
  EXPECT_TRUE(encoder.session().shrinks_arena_after_run());
  const std::vector<float> pixels = c.load("pixel_values").as_float();
  const VisualFeatures first = encoder.encode(pixels, c.grids());
  const VisualFeatures second = encoder.encode(pixels, c.grids());
  EXPECT_EQ(first.data, second.data);
  EXPECT_LT(test::compare(split_visual_features(first, ckpt.config().text.hidden_size).merged, c.load("image_features").as_float()).relative(),
            1e-4);
}

TEST(VisionExport, Fp16StaysCloseToHf) {
  test::TempDir dir;
  VisionExportOptions options;
  options.fp16 = true;
  const auto errors = vision_errors(options, dir);
  ASSERT_GE(errors.size(), 4u);
  for (const auto& [name, error] : errors) {
    std::printf("[ vision fp16 ] %-22s max relative error %.3g\n", name.c_str(), error);
    EXPECT_LT(error, 2e-2) << name;  // float16 keeps ~3 significant digits through every block
  }
}

// Attention never crosses an item: every image of a call gets the features it gets alone.
TEST(VisionExport, ImagesInOneCallEqualEachImageAlone) {
  test::TempDir dir;
  OnnxEnvironment env;
  int checked = 0;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (!c.has("pixel_values") || c.grids().size() < 2) continue;
    const Checkpoint ckpt = Checkpoint::open(c.model_dir());
    export_vision(ckpt, {}, dir.path());
    VisionEncoder encoder(env, dir / "vision.onnx", ckpt.config());
    const std::vector<float> pixels = c.load("pixel_values").as_float();
    const std::vector<GridThw> grids = c.grids();
    const VisualFeatures together = encoder.encode(pixels, grids);
    std::vector<float> alone;
    const std::size_t row = static_cast<std::size_t>(ckpt.config().vision.patch_input_size());
    std::size_t first_row = 0;
    for (const GridThw& grid : grids) {
      const std::size_t rows = static_cast<std::size_t>(grid.patches());
      const VisualFeatures one = encoder.encode(std::span<const float>(pixels).subspan(first_row * row, rows * row),
                                                std::vector<GridThw>{grid});
      alone.insert(alone.end(), one.data.begin(), one.data.end());
      first_row += rows;
    }
    ASSERT_EQ(alone.size(), together.data.size()) << c.name;
    EXPECT_LT(test::compare(together.data, alone).relative(), 1e-5) << c.name;
    ++checked;
  }
  std::size_t multi_image_cases = 0;
  for (const auto& [name, entry] : test::golden_manifest()["cases"].items()) {
    multi_image_cases += entry.contains("images") && entry["images"].size() >= 2;
  }
  EXPECT_EQ(static_cast<std::size_t>(checked), multi_image_cases);
  EXPECT_GE(checked, 1);
}

// Each item's attention is one MultiHeadAttention with only q, k and v: no [N, N] mask or bias
// exists anywhere, and ONNX Runtime's CPU kernel takes its flash-attention path, whose memory is
// linear in the patches.
TEST(VisionExport, AttentionHasNoQuadraticMask) {
  test::TempDir dir;
  int checked = 0;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (!c.has("pixel_values")) continue;
    const Checkpoint ckpt = Checkpoint::open(c.model_dir());
    export_vision(ckpt, {}, dir.path());
    onnx::ModelProto model;
    std::ifstream in(dir / "vision.onnx", std::ios::binary);
    ASSERT_TRUE(model.ParseFromIstream(&in));
    int attention_nodes = 0;
    std::function<void(const onnx::GraphProto&)> walk = [&](const onnx::GraphProto& graph) {
      for (const onnx::NodeProto& node : graph.node()) {
        if (node.op_type() == "MultiHeadAttention") {
          ++attention_nodes;
          EXPECT_EQ(node.input_size(), 3) << node.name() << " has a mask or bias input";
        }
        for (const onnx::AttributeProto& attribute : node.attribute()) {
          if (attribute.has_g()) walk(attribute.g());
        }
      }
    };
    walk(model.graph());
    // Per block, one on views of the whole call (one item) and one in the Loop over items.
    EXPECT_EQ(attention_nodes, 2 * ckpt.config().vision.depth);
    ++checked;
    break;  // the graph's structure is the same for every model; one export shows it
  }
  EXPECT_EQ(checked, 1);
}

TEST(VisionEncoder, RejectsBadGridsBeforeRunning) {
  auto expect_invalid = [&](std::vector<GridThw> grids, std::int64_t rows, const std::string& needle) {
    try {
      validate_grids(grids, rows);
      FAIL() << "accepted a bad grid: " << needle;
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_invalid({{1, 3, 4}}, 12, "even");
  expect_invalid({{1, 0, 4}}, 0, "positive");
  expect_invalid({{-1, 4, 4}}, 16, "positive");
  expect_invalid({{1, 4, 4}}, 20, "16 patches but pixel_values has 20 rows");
  expect_invalid({{1, 4, 4}, {1, 2, 2}}, 16, "20 patches");
  expect_invalid({{1, 1 << 20, 2}}, 2, "too large");
  expect_invalid({{1 << 13, 1 << 13, 2}}, 2, "more than");
  expect_invalid({}, 0, "empty");
  EXPECT_NO_THROW(validate_grids(std::vector<GridThw>{{1, 4, 6}, {2, 2, 2}}, 32));
}

}  // namespace
}  // namespace q3vl
