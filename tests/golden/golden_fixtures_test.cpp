// The golden fixtures (tests/fixtures/golden, made by tools/golden/gen_fixtures.py from Hugging
// Face transformers) are checked here for internal consistency, and their HF-saved checkpoints
// must open with our checkpoint reader. The export and runtime tests compare against them.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "engine/sampler.h"
#include "support/golden.h"
#include "support/test_support.h"
#include "util/files.h"
#include "util/npy.h"

namespace q3vl {
namespace {

using nlohmann::json;

const json& manifest() { return test::golden_manifest(); }

TEST(GoldenFixtures, ManifestCoversTheRequiredCases) {
  ASSERT_GE(manifest()["cases"].size(), 6u);
  bool full_vocab_with_prompt = false;
  bool two_images = false;
  bool text_only = false;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (c.entry.contains("prompt_text")) full_vocab_with_prompt = true;
    if (c.has("image_grid_thw") && c.load("image_grid_thw").shape[0] == 2) two_images = true;
    if (!c.has("pixel_values")) text_only = true;
  }
  EXPECT_TRUE(full_vocab_with_prompt);
  EXPECT_TRUE(two_images);
  EXPECT_TRUE(text_only);
}

TEST(GoldenFixtures, EveryListedArrayHasItsDeclaredDtypeAndShape) {
  for (const test::GoldenCase& c : test::golden_cases()) {
    for (const auto& [name, info] : c.entry["arrays"].items()) {
      const NpyArray a = c.load(name);
      EXPECT_EQ(a.shape, info["shape"].get<std::vector<std::int64_t>>()) << c.name << "/" << name;
      const std::string dtype = info["dtype"].get<std::string>();
      EXPECT_EQ(a.descr, dtype == "float32" ? "<f4" : dtype == "int64" ? "<i8" : dtype) << c.name << "/" << name;
    }
  }
}

TEST(GoldenFixtures, HfSavedCheckpointsOpenWithOurReader) {
  for (const auto& [name, entry] : manifest()["models"].items()) {
    const Checkpoint ckpt = Checkpoint::open(test::golden_dir() / entry["dir"].get<std::string>());
    EXPECT_TRUE(ckpt.unexpected_tensors().empty()) << name;
  }
}

TEST(GoldenFixtures, VisualTokensPatchesAndFeaturesAgree) {
  std::size_t with_pixels = 0;
  for (const test::GoldenCase& c : test::golden_cases()) {
    SCOPED_TRACE(c.name);
    const ModelConfig config = c.config();
    const std::vector<std::int64_t> ids = c.load("input_ids").as_int64();
    const auto pads = std::count(ids.begin(), ids.end(), config.image_token_id);
    const auto starts = std::count(ids.begin(), ids.end(), config.vision_start_token_id);
    if (!c.has("pixel_values")) {
      EXPECT_EQ(pads, 0);
      continue;
    }
    ++with_pixels;
    const NpyArray grid = c.load("image_grid_thw");
    const std::vector<std::int64_t> thw = grid.as_int64();
    std::int64_t patches = 0;
    for (std::int64_t i = 0; i < grid.shape[0]; ++i) {
      EXPECT_EQ(thw[i * 3 + 1] % 2, 0);
      EXPECT_EQ(thw[i * 3 + 2] % 2, 0);
      patches += thw[i * 3] * thw[i * 3 + 1] * thw[i * 3 + 2];
    }
    EXPECT_EQ(starts, grid.shape[0]);
    EXPECT_EQ(pads, patches / 4);
    const NpyArray pixels = c.load("pixel_values");
    EXPECT_EQ(pixels.shape, (std::vector<std::int64_t>{patches, config.vision.patch_input_size()}));
    for (float v : pixels.as_float()) ASSERT_TRUE(v >= -1.0f && v <= 1.0f);  // (x/255 - 0.5) / 0.5
    const std::int64_t H = config.text.hidden_size;
    EXPECT_EQ(c.load("vision_patch_embed").shape, (std::vector<std::int64_t>{patches, config.vision.hidden_size}));
    EXPECT_EQ(c.load("vision_pos_embed").shape, (std::vector<std::int64_t>{patches, config.vision.hidden_size}));
    EXPECT_EQ(c.load("image_features").shape, (std::vector<std::int64_t>{patches / 4, H}));
    EXPECT_EQ(c.load("deepstack_features").shape,
              (std::vector<std::int64_t>{static_cast<std::int64_t>(config.vision.deepstack_visual_indexes.size()),
                                         patches / 4, H}));
  }
  EXPECT_EQ(with_pixels, test::golden_cases_with_images());
}

TEST(GoldenFixtures, PositionIdsAndRopeDeltasAgree) {
  for (const test::GoldenCase& c : test::golden_cases()) {
    SCOPED_TRACE(c.name);
    const std::vector<std::int64_t> ids = c.load("input_ids").as_int64();
    const std::int64_t S = static_cast<std::int64_t>(ids.size());
    const NpyArray positions = c.load("position_ids");
    ASSERT_EQ(positions.shape, (std::vector<std::int64_t>{3, 1, S}));
    const std::vector<std::int64_t> pos = positions.as_int64();
    const std::int64_t max_pos = *std::max_element(pos.begin(), pos.end());
    EXPECT_EQ(c.load("rope_deltas").as_int64().at(0), max_pos + 1 - S);
    if (!c.has("pixel_values")) {
      for (std::int64_t axis = 0; axis < 3; ++axis) {
        for (std::int64_t j = 0; j < S; ++j) EXPECT_EQ(pos[axis * S + j], j);
      }
    }
  }
}

TEST(GoldenFixtures, GreedyTokensAreTheArgmaxOfEachStep) {
  for (const test::GoldenCase& c : test::golden_cases()) {
    SCOPED_TRACE(c.name);
    const std::vector<std::int64_t> tokens = c.load("greedy_tokens").as_int64();
    ASSERT_EQ(tokens.size(), 32u);
    const std::int64_t V = c.config().text.vocab_size;
    const NpyArray prefill = c.load("prefill_logits");
    const std::vector<float> prefill_values = prefill.as_float();
    ASSERT_EQ(prefill.shape.back(), V);
    const float* last_row = prefill_values.data() + prefill_values.size() - static_cast<std::size_t>(V);
    EXPECT_EQ(argmax(std::span<const float>(last_row, static_cast<std::size_t>(V))), tokens[0]);
    if (c.has("step_logits")) {
      const std::vector<float> steps = c.load("step_logits").as_float();
      ASSERT_EQ(steps.size(), static_cast<std::size_t>(32 * V));
      EXPECT_TRUE(std::equal(last_row, last_row + V, steps.begin()));
      for (std::int64_t i = 0; i < 32; ++i) EXPECT_EQ(argmax(std::span<const float>(steps.data() + i * V, static_cast<std::size_t>(V))), tokens[static_cast<std::size_t>(i)]);
    } else {
      const std::vector<std::int64_t> top_ids = c.load("step_topk_ids").as_int64();
      const std::vector<float> top_logits = c.load("step_topk_logits").as_float();
      const std::size_t k = top_ids.size() / 32;
      for (std::size_t i = 0; i < 32; ++i) {
        EXPECT_EQ(top_ids[i * k], tokens[i]);
        EXPECT_TRUE(std::is_sorted(top_logits.begin() + static_cast<std::ptrdiff_t>(i * k),
                                   top_logits.begin() + static_cast<std::ptrdiff_t>((i + 1) * k), std::greater<float>()));
      }
      EXPECT_EQ(top_logits[0], *std::max_element(last_row, last_row + V));
    }
  }
}

TEST(GoldenFixtures, HiddenStatesCoverEveryLayer) {
  for (const test::GoldenCase& c : test::golden_cases()) {
    SCOPED_TRACE(c.name);
    const ModelConfig config = c.config();
    const std::int64_t S = c.load("input_ids").shape.back();
    EXPECT_EQ(c.load("hidden_states").shape,
              (std::vector<std::int64_t>{config.text.num_hidden_layers + 1, S, config.text.hidden_size}));
  }
}

}  // namespace
}  // namespace q3vl
