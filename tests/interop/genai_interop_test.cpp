// A q3vl package in stock onnxruntime-genai 0.15.2: greedy generation with an image through
// genai's own multimodal processor gives the same 32 tokens as Hugging Face and as our runtime,
// DeepStack included (it rides in the wide visual channel).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <ort_genai_c.h>

#include "engine/sampler.h"
#include "export/package_writer.h"
#include "model/config.h"
#include "engine/text_models.h"
#include "engine/model_data.h"
#include "engine/vision_encoder.h"
#include "model/random_checkpoint.h"
#include "q3vl/conversation.h"
#include "support/full_model.h"
#include "support/golden.h"
#include "support/test_support.h"

#if defined(__SANITIZE_ADDRESS__)
// libonnxruntime-genai carries its own inline copy of Ort::Exception, from another header version.
// In this process, which links both, an ONNX Runtime error that our code throws and catches is
// freed by genai's copy (new vs delete[]): a third-party clash, confined to this test program.
extern "C" const char* __asan_default_options() { return "alloc_dealloc_mismatch=0"; }
#endif

namespace q3vl {
namespace {

namespace fs = std::filesystem;

void ok(OgaResult* result) {
  if (result == nullptr) return;
  const std::string message = OgaResultGetError(result);
  OgaDestroyResult(result);
  throw std::runtime_error("onnxruntime-genai: " + message);
}

template <typename T, void (*Destroy)(T*)>
struct Deleter {
  void operator()(T* p) const { Destroy(p); }
};
template <typename T, void (*Destroy)(T*)>
using Owned = std::unique_ptr<T, Deleter<T, Destroy>>;

struct GenaiModel {
  Owned<OgaConfig, OgaDestroyConfig> config;
  Owned<OgaModel, OgaDestroyModel> model;
  Owned<OgaMultiModalProcessor, OgaDestroyMultiModalProcessor> processor;

  explicit GenaiModel(const fs::path& package) {
    OgaConfig* c = nullptr;
    ok(OgaCreateConfig(package.c_str(), &c));
    config.reset(c);
    ok(OgaConfigClearProviders(c));
    OgaModel* m = nullptr;
    ok(OgaCreateModelFromConfig(c, &m));
    model.reset(m);
    OgaMultiModalProcessor* p = nullptr;
    ok(OgaCreateMultiModalProcessor(m, &p));
    processor.reset(p);
  }

  Owned<OgaNamedTensors, OgaDestroyNamedTensors> process(const fs::path& image, const std::string& prompt) {
    OgaImages* images = nullptr;
    ok(OgaLoadImage(image.c_str(), &images));
    Owned<OgaImages, OgaDestroyImages> owned_images(images);
    OgaNamedTensors* inputs = nullptr;
    ok(OgaProcessorProcessImages(processor.get(), prompt.c_str(), images, &inputs));
    return Owned<OgaNamedTensors, OgaDestroyNamedTensors>(inputs);
  }

  std::vector<std::int64_t> greedy(OgaNamedTensors* inputs, int steps) {
    OgaGeneratorParams* params = nullptr;
    ok(OgaCreateGeneratorParams(model.get(), &params));
    Owned<OgaGeneratorParams, OgaDestroyGeneratorParams> owned_params(params);
    ok(OgaGeneratorParamsSetSearchBool(params, "do_sample", false));
    OgaGenerator* generator = nullptr;
    ok(OgaCreateGenerator(model.get(), params, &generator));
    Owned<OgaGenerator, OgaDestroyGenerator> owned_generator(generator);
    ok(OgaGenerator_SetInputs(generator, inputs));
    std::vector<std::int64_t> tokens;
    while (static_cast<int>(tokens.size()) < steps && !OgaGenerator_IsDone(generator)) {
      ok(OgaGenerator_GenerateNextToken(generator));
      const std::int32_t* next = nullptr;
      std::size_t count = 0;
      ok(OgaGenerator_GetNextTokens(generator, &next, &count));
      tokens.push_back(next[0]);
    }
    return tokens;
  }
};

std::vector<float> float_tensor(OgaNamedTensors* tensors, const char* name, std::vector<std::int64_t>& shape) {
  OgaTensor* tensor = nullptr;
  ok(OgaNamedTensorsGet(tensors, name, &tensor));
  Owned<OgaTensor, OgaDestroyTensor> owned(tensor);
  std::size_t rank = 0;
  ok(OgaTensorGetShapeRank(tensor, &rank));
  shape.assign(rank, 0);
  ok(OgaTensorGetShape(tensor, shape.data(), rank));
  void* data = nullptr;
  ok(OgaTensorGetData(tensor, &data));
  std::int64_t count = 1;
  for (std::int64_t d : shape) count *= d;
  return {static_cast<float*>(data), static_cast<float*>(data) + count};
}

class GenaiInterop : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const test::GoldenCase c = test::golden_case("full_image_system");
    PackageOptions options;
    options.tokenizer_dir = Q3VL_TOKENIZER_DIR;
    options.video_preprocessor_config = test::reference_video_preprocessor_config();
    options.show_progress = false;
    build_package(c.model_dir(), package(), options);
  }
  static void TearDownTestSuite() {
    OgaShutdown();
    delete dir_;
  }
  static fs::path package() { return dir_->path() / "pkg"; }
  static test::TempDir* dir_;
};
test::TempDir* GenaiInterop::dir_ = nullptr;

TEST_F(GenaiInterop, GreedyTokensWithAnImageEqualHfAndOurRuntime) {
  const test::GoldenCase c = test::golden_case("full_image_system");
  const fs::path image = test::golden_dir() / c.entry["dir"].get<std::string>() / "image0.png";
  const std::vector<std::int64_t> hf_tokens = c.load("greedy_tokens").as_int64();

  GenaiModel genai(package());
  auto inputs = genai.process(image, c.entry["prompt_text"].get<std::string>());
  std::vector<std::int64_t> shape;
  const std::vector<float> genai_pixels = float_tensor(inputs.get(), "pixel_values", shape);
  const test::Difference pixel_diff = test::compare(genai_pixels, c.load("pixel_values").as_float());
  EXPECT_LT(pixel_diff.max_abs, 1e-6) << "genai's preprocessing of an image that needs no resize";
  const std::vector<std::int64_t> genai_tokens = genai.greedy(inputs.get(), 32);
  EXPECT_EQ(genai_tokens, hf_tokens);

  // Our runtime on the same package, from HF's pixel values.
  const ModelConfig config = load_model_config(c.model_dir() / "config.json");
  OnnxEnvironment env;
  VisionEncoder vision(env, package() / "vision.onnx", config);
  EmbeddingModel embedding(env, package() / "embedding.onnx", config);
  const DecoderModel decoder_model(env, package() / "text.onnx", config);
  KvCache decoder = decoder_model.new_cache();
  const VisualFeatures features = vision.encode(c.load("pixel_values").as_float(), c.grids());
  const std::vector<std::int64_t> ids = c.load("input_ids").as_int64();
  const std::int64_t delta = c.load("rope_deltas").as_int64()[0];
  std::vector<float> logits = decoder_model.forward(decoder, embedding.embed(ids, &features), c.load("position_ids").as_int64()).logits;
  std::vector<std::int64_t> ours;
  for (int step = 0; step < 32; ++step) {
    ours.push_back(argmax(logits));
    const std::int64_t position = decoder.cached_tokens() + delta;
    logits = decoder_model.forward(decoder, embedding.embed(std::vector<std::int64_t>{ours.back()}, nullptr),
                             std::vector<std::int64_t>{position, position, position}).logits;
  }
  EXPECT_EQ(ours, genai_tokens);
}

// The README's C example (examples/genai) on the same package: HF's tokens on its first line.
TEST_F(GenaiInterop, CExampleGivesHfTokens) {
  const test::GoldenCase c = test::golden_case("full_image_system");
  const fs::path image = test::golden_dir() / c.entry["dir"].get<std::string>() / "image0.png";
  int status = 0;
  const std::string out = test::run_command(
      std::string(Q3VL_GENAI_EXAMPLE) + " " + test::shell_quote(package().string()) + " " + test::shell_quote(image.string()) +
          " " + test::shell_quote(c.entry["prompt_text"].get<std::string>()) + " 32 2>/dev/null",
      status);
  ASSERT_EQ(status, 0);
  std::string expected;
  for (std::int64_t id : c.load("greedy_tokens").as_int64()) {
    if (!expected.empty()) expected += ' ';
    expected += std::to_string(id);
  }
  EXPECT_EQ(out.substr(0, out.find('\n')), expected);
}

// Not a pass/fail property of ours: prints how genai's resize compares with HF's on an odd-sized
// image (the packages share the preprocessor bounds of the fixtures).
TEST_F(GenaiInterop, ReportsHowGenaiResizeComparesWithHf) {
  const test::GoldenCase c = test::golden_case("small_a_resize_odd");
  const fs::path image = test::golden_dir() / c.entry["dir"].get<std::string>() / "image0.png";
  GenaiModel genai(package());
  auto inputs = genai.process(image, "<|vision_start|><|image_pad|><|vision_end|>");
  std::vector<std::int64_t> shape;
  const std::vector<float> genai_pixels = float_tensor(inputs.get(), "pixel_values", shape);
  const std::vector<float> hf_pixels = c.load("pixel_values").as_float();
  ASSERT_EQ(genai_pixels.size(), hf_pixels.size()) << "genai chose a different resized size";
  std::size_t differing = 0;
  for (std::size_t i = 0; i < hf_pixels.size(); ++i) differing += std::fabs(genai_pixels[i] - hf_pixels[i]) > 1e-6f;
  const test::Difference d = test::compare(genai_pixels, hf_pixels);
  std::printf("[ genai resize ] 75x101 -> 64x96: %zu of %zu pixel values differ from HF, max |diff| %.4f (%.1f levels of 255)\n",
              differing, hf_pixels.size(), d.max_abs, d.max_abs * 127.5);
}

}  // namespace
}  // namespace q3vl

namespace q3vl {
namespace {

// A Qwen3-VL MoE package (make-tiny's `moe` preset: 8 experts, top-2, one dense layer; fp32) in
// stock genai: the decoder's inputs and outputs are those of a dense package and the experts are
// ONNX Runtime's own MoE op, so genai runs it unchanged; its greedy tokens with an image equal our
// runtime's.
TEST(GenaiMoeInterop, AMoePackageGivesOurRuntimesTokens) {
  const test::TempDir dir;
  RandomCheckpointOptions checkpoint;
  checkpoint.tokenizer_dir = Q3VL_TOKENIZER_DIR;
  checkpoint.show_progress = false;
  write_random_checkpoint(random_checkpoint_config("moe"), dir.path() / "ckpt", checkpoint);
  PackageOptions options;
  options.show_progress = false;
  build_package(dir.path() / "ckpt", dir.path() / "pkg", options);

  const test::GoldenCase c = test::golden_case("full_image_system");
  const fs::path image = test::golden_dir() / c.entry["dir"].get<std::string>() / "image0.png";
  std::vector<std::int64_t> genai_tokens;
  {
    GenaiModel genai(dir.path() / "pkg");
    auto inputs = genai.process(image, c.entry["prompt_text"].get<std::string>());
    genai_tokens = genai.greedy(inputs.get(), 16);
  }
  OgaShutdown();
  const std::shared_ptr<const Model> model = Model::load(dir.path() / "pkg");
  ReplyOptions greedy;
  greedy.sampling = model->default_sampling();
  greedy.sampling->greedy = true;
  greedy.max_new_tokens = 16;
  const Reply ours = Conversation(model).respond(test::case_messages(c), greedy);
  // genai hands out the end-of-sequence token it stops on; a Reply leaves it out.
  const auto& eos = model->data().package.generation_defaults().eos_token_ids;
  if (!genai_tokens.empty() && std::ranges::find(eos, genai_tokens.back()) != eos.end()) genai_tokens.pop_back();
  ASSERT_FALSE(genai_tokens.empty());
  EXPECT_EQ(ours.tokens, genai_tokens);
}

}  // namespace
}  // namespace q3vl
