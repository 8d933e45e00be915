#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "model/random_checkpoint.h"
#include "model/tensor_names.h"
#include "q3vl/error.h"
#include "support/test_support.h"
#include "util/files.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(RandomCheckpoint, EveryPresetIsAValidConfig) {
  for (const std::string& preset : random_checkpoint_presets()) {
    EXPECT_NO_THROW(random_checkpoint_config(preset)) << preset;
  }
  EXPECT_THROW(random_checkpoint_config("13b"), InvalidInput);
}

TEST(RandomCheckpoint, RealShapesMatchTheReferenceConfig) {
  // The 4B preset must be the hub's config exactly (docs/model-math.md §1.3).
  const ModelConfig reference = load_model_config(test::reference_model_files() / "config.json");
  EXPECT_EQ(to_config_json(random_checkpoint_config("4b")), to_config_json(reference));
}

TEST(RandomCheckpoint, WritesAHuggingFaceFolderThatOpens) {
  test::TempDir dir;
  RandomCheckpointOptions options;
  options.tokenizer_dir = test::fake_tokenizer_dir(dir);
  options.show_progress = false;
  options.seed = 7;
  write_random_checkpoint(random_checkpoint_config("tiny"), dir / "m", options);
  for (const char* file : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                           "chat_template.json", "preprocessor_config.json", "generation_config.json"}) {
    EXPECT_TRUE(fs::exists(dir / "m" / file)) << file;
  }
  EXPECT_FALSE(fs::exists(dir / "m.partial"));
  // The tokenizer config carries the Qwen3-VL template (with its vision tokens), not the text one.
  const json tokenizer_config = json::parse(read_text_file(dir / "m" / "tokenizer_config.json"));
  EXPECT_NE(tokenizer_config["chat_template"].get<std::string>().find("<|vision_start|>"), std::string::npos);

  const Checkpoint ckpt = Checkpoint::open(dir / "m");
  // Random weights have HF's initializer std (0.02) and are not degenerate.
  const std::vector<float> q = read_as_float(ckpt.tensor(names::text_layer(0, "self_attn.q_proj.weight")));
  double sum = 0;
  double sum_sq = 0;
  for (float x : q) {
    sum += x;
    sum_sq += static_cast<double>(x) * x;
  }
  const double mean = sum / static_cast<double>(q.size());
  const double std_dev = std::sqrt(sum_sq / static_cast<double>(q.size()) - mean * mean);
  EXPECT_NEAR(std_dev, 0.02, 0.002);
  EXPECT_NEAR(mean, 0.0, 0.002);
}

TEST(RandomCheckpoint, SameSeedSameBytesOtherSeedOtherBytes) {
  test::TempDir dir;
  RandomCheckpointOptions options;
  options.tokenizer_dir = test::fake_tokenizer_dir(dir);
  options.show_progress = false;
  const ModelConfig config = test::small_vocab_tiny_config(true);
  options.seed = 1;
  write_random_checkpoint(config, dir / "a", options);
  write_random_checkpoint(config, dir / "b", options);
  options.seed = 2;
  write_random_checkpoint(config, dir / "c", options);
  const std::string a = read_text_file(dir / "a" / "model.safetensors");
  EXPECT_EQ(a, read_text_file(dir / "b" / "model.safetensors"));
  EXPECT_NE(a, read_text_file(dir / "c" / "model.safetensors"));
}

TEST(RandomCheckpoint, RefusesToOverwriteWithoutForceAndNeedsTokenizer) {
  test::TempDir dir;
  fs::create_directories(dir / "m");
  write_text_file(dir / "m" / "keep.txt", "user data");
  RandomCheckpointOptions options;
  options.tokenizer_dir = test::fake_tokenizer_dir(dir);
  options.show_progress = false;
  EXPECT_THROW(write_random_checkpoint(random_checkpoint_config("tiny"), dir / "m", options), InvalidInput);
  EXPECT_TRUE(fs::exists(dir / "m" / "keep.txt"));
  options.tokenizer_dir = dir / "no-tokenizer";
  EXPECT_THROW(write_random_checkpoint(random_checkpoint_config("tiny"), dir / "n", options), InvalidInput);
  EXPECT_FALSE(fs::exists(dir / "n"));
  EXPECT_FALSE(fs::exists(dir / "n.partial"));
}

}  // namespace
}  // namespace q3vl
