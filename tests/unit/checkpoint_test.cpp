#include <gtest/gtest.h>

#include <functional>

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

ModelConfig small_config(bool tied) { return test::small_vocab_tiny_config(tied); }

fs::path write_checkpoint(const test::TempDir& dir, const ModelConfig& config, std::uint64_t max_shard_bytes = 4ull << 30) {
  RandomCheckpointOptions options;
  options.tokenizer_dir = test::fake_tokenizer_dir(dir);
  options.show_progress = false;
  options.max_shard_bytes = max_shard_bytes;
  write_random_checkpoint(config, dir / "model", options);
  return dir / "model";
}

void expect_open_error(const fs::path& dir, const std::string& needle) {
  try {
    Checkpoint::open(dir);
    FAIL() << "opened a bad checkpoint; expected an error containing: " << needle;
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

void edit_config(const fs::path& dir, const std::function<void(json&)>& edit) {
  json config = json::parse(read_text_file(dir / "config.json"));
  edit(config);
  write_text_file(dir / "config.json", config.dump());
}

TEST(Checkpoint, OpensASingleFileCheckpointAndResolvesTiedHead) {
  test::TempDir dir;
  const fs::path model = write_checkpoint(dir, small_config(true));
  const Checkpoint ckpt = Checkpoint::open(model);
  EXPECT_EQ(ckpt.shard_paths().size(), 1u);
  EXPECT_FALSE(ckpt.has(names::kLmHead));
  EXPECT_EQ(ckpt.tensor(names::kLmHead).bytes.data(), ckpt.tensor(names::kEmbedTokens).bytes.data());
  EXPECT_TRUE(ckpt.unexpected_tensors().empty());
  const TensorView norm = ckpt.tensor(names::text_layer(0, "input_layernorm.weight"));
  for (float x : read_as_float(norm)) EXPECT_EQ(x, 1.0f);
}

TEST(Checkpoint, OpensShardedCheckpoints) {
  test::TempDir dir;
  const fs::path model = write_checkpoint(dir, small_config(false), 256 * 1024);
  ASSERT_TRUE(fs::exists(model / "model.safetensors.index.json"));
  const Checkpoint ckpt = Checkpoint::open(model);
  EXPECT_GT(ckpt.shard_paths().size(), 2u);
  EXPECT_TRUE(ckpt.has(names::kLmHead));
  EXPECT_NE(ckpt.tensor(names::kLmHead).bytes.data(), ckpt.tensor(names::kEmbedTokens).bytes.data());
}

TEST(Checkpoint, MissingShardIsNamed) {
  test::TempDir dir;
  const fs::path model = write_checkpoint(dir, small_config(false), 256 * 1024);
  const fs::path second = Checkpoint::open(model).shard_paths().at(1);
  fs::remove(second);
  expect_open_error(model, second.filename().string() + ": shard listed");
}

TEST(Checkpoint, ShapeMismatchNamesTheTensor) {
  test::TempDir dir;
  const fs::path model = write_checkpoint(dir, small_config(true));
  edit_config(model, [](json& c) { c["text_config"]["intermediate_size"] = 96; });
  expect_open_error(model, "mlp.gate_proj.weight\" has shape");
}

TEST(Checkpoint, UntiedCheckpointWithoutLmHeadIsRejected) {
  test::TempDir dir;
  const fs::path model = write_checkpoint(dir, small_config(true));
  edit_config(model, [](json& c) {
    c["tie_word_embeddings"] = false;
    c["text_config"]["tie_word_embeddings"] = false;
  });
  expect_open_error(model, "lm_head.weight");
}

TEST(Checkpoint, TiedCheckpointWithADifferentLmHeadIsRejected) {
  test::TempDir dir;
  const fs::path model = write_checkpoint(dir, small_config(false));
  edit_config(model, [](json& c) {
    c["tie_word_embeddings"] = true;
    c["text_config"]["tie_word_embeddings"] = true;
  });
  expect_open_error(model, "differs");
}

TEST(Checkpoint, TruncatedWeightsAreReported) {
  test::TempDir dir;
  const fs::path model = write_checkpoint(dir, small_config(true));
  fs::resize_file(model / "model.safetensors", fs::file_size(model / "model.safetensors") - 100);
  expect_open_error(model, "model.safetensors");
}

TEST(Checkpoint, MissingConfigOrWeightsAreReported) {
  test::TempDir dir;
  const fs::path model = write_checkpoint(dir, small_config(true));
  fs::remove(model / "model.safetensors");
  expect_open_error(model, "no model.safetensors");
  fs::remove(model / "config.json");
  expect_open_error(model, "config.json");
  expect_open_error(dir / "nothing-here", "not a checkpoint folder");
}

TEST(Checkpoint, IndexPointingOutsideTheFolderIsRejected) {
  test::TempDir dir;
  const fs::path model = write_checkpoint(dir, small_config(false), 256 * 1024);
  json index = json::parse(read_text_file(model / "model.safetensors.index.json"));
  index["weight_map"][names::kEmbedTokens] = "../elsewhere.safetensors";
  write_text_file(model / "model.safetensors.index.json", index.dump());
  expect_open_error(model, "not a plain file name");
}

}  // namespace
}  // namespace q3vl
