#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/tensor_names.h"
#include "q3vl/error.h"
#include "support/test_support.h"
#include "util/files.h"

namespace q3vl {
namespace {

using nlohmann::json;

json reference_config() {
  return json::parse(read_text_file(test::reference_model_files() / "config.json"));
}

// Expects parse_model_config to throw T with a message containing `needle`.
template <typename T>
void expect_rejected(const json& config, const std::string& needle) {
  try {
    parse_model_config(config, "config.json");
    FAIL() << "accepted a config that should fail with: " << needle;
  } catch (const T& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ModelConfig, ReadsTheReal4BConfig) {
  const json raw = reference_config();
  const ModelConfig c = load_model_config(test::reference_model_files() / "config.json");
  const json& text = raw["text_config"];
  const json& vision = raw["vision_config"];
  EXPECT_EQ(c.text.hidden_size, text["hidden_size"].get<std::int64_t>());
  EXPECT_EQ(c.text.num_hidden_layers, text["num_hidden_layers"].get<std::int64_t>());
  EXPECT_EQ(c.text.num_attention_heads, text["num_attention_heads"].get<std::int64_t>());
  EXPECT_EQ(c.text.num_key_value_heads, text["num_key_value_heads"].get<std::int64_t>());
  EXPECT_EQ(c.text.head_dim, text["head_dim"].get<std::int64_t>());
  EXPECT_EQ(c.text.vocab_size, text["vocab_size"].get<std::int64_t>());
  EXPECT_EQ(c.text.rope_theta, text["rope_theta"].get<double>());
  EXPECT_EQ(c.text.mrope_section, text["rope_scaling"]["mrope_section"].get<std::vector<std::int64_t>>());
  EXPECT_EQ(c.vision.depth, vision["depth"].get<std::int64_t>());
  EXPECT_EQ(c.vision.deepstack_visual_indexes, vision["deepstack_visual_indexes"].get<std::vector<std::int64_t>>());
  EXPECT_EQ(c.vision.patch_input_size(), vision["in_channels"].get<std::int64_t>() *
                                             vision["temporal_patch_size"].get<std::int64_t>() *
                                             vision["patch_size"].get<std::int64_t>() * vision["patch_size"].get<std::int64_t>());
  EXPECT_EQ(c.vision.position_grid_side() * c.vision.position_grid_side(), c.vision.num_position_embeddings);
  EXPECT_EQ(c.image_token_id, raw["image_token_id"].get<std::int64_t>());
  EXPECT_EQ(c.tie_word_embeddings, raw["tie_word_embeddings"].get<bool>());
}

TEST(ModelConfig, RopeParametersFormIsRead) {
  json v5 = reference_config();
  json& text = v5["text_config"];
  const json section = text["rope_scaling"]["mrope_section"];
  text["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1000000.0}, {"mrope_section", section}};
  text.erase("rope_scaling");
  text.erase("rope_theta");
  const ModelConfig c = parse_model_config(v5, "v5");
  EXPECT_EQ(c.text.rope_theta, 1000000.0);
  EXPECT_EQ(c.text.mrope_section, section.get<std::vector<std::int64_t>>());
  const ModelConfig reference = parse_model_config(reference_config(), "4.57");
  EXPECT_EQ(c.text.hidden_size, reference.text.hidden_size);
}

TEST(ModelConfig, WrittenConfigReadsBackIdentically) {
  const ModelConfig c = parse_model_config(reference_config(), "ref");
  const ModelConfig back = parse_model_config(to_config_json(c), "roundtrip");
  EXPECT_EQ(to_config_json(back), to_config_json(c));
}

TEST(ModelConfig, RejectsBrokenConfigsWithTheFieldName) {
  json missing = reference_config();
  missing["text_config"].erase("hidden_size");
  expect_rejected<InvalidInput>(missing, "hidden_size");

  json wrong_type = reference_config();
  wrong_type["vision_config"]["depth"] = "24";
  expect_rejected<InvalidInput>(wrong_type, "vision_config.depth");

  json bad_section = reference_config();
  bad_section["text_config"]["rope_scaling"]["mrope_section"] = {24, 20};  // HF needs entries 1 and 2
  expect_rejected<InvalidInput>(bad_section, "mrope_section");

  json bad_deepstack = reference_config();
  bad_deepstack["vision_config"]["deepstack_visual_indexes"] = {5, 11, 24};
  expect_rejected<InvalidInput>(bad_deepstack, "deepstack_visual_indexes");

  json bad_heads = reference_config();
  bad_heads["text_config"]["num_key_value_heads"] = 7;
  expect_rejected<InvalidInput>(bad_heads, "num_key_value_heads");

  json bad_out = reference_config();
  bad_out["vision_config"]["out_hidden_size"] = 2048;
  expect_rejected<InvalidInput>(bad_out, "out_hidden_size");

  json other = reference_config();
  other["model_type"] = "qwen2_5_vl";
  expect_rejected<InvalidInput>(other, "model_type");

  json yarn = reference_config();
  yarn["text_config"]["rope_scaling"]["rope_type"] = "yarn";
  expect_rejected<Unsupported>(yarn, "yarn");

  EXPECT_THROW(parse_model_config_text("{\"model_type\": ", "config.json"), InvalidInput);
}

TEST(ModelConfig, TieFlagFallsBackToTextConfig) {
  json raw = reference_config();
  raw.erase("tie_word_embeddings");
  raw["text_config"]["tie_word_embeddings"] = false;
  EXPECT_FALSE(parse_model_config(raw, "x").tie_word_embeddings);
  raw["text_config"]["tie_word_embeddings"] = true;
  EXPECT_TRUE(parse_model_config(raw, "x").tie_word_embeddings);
}

TEST(ExpectedTensors, MatchTheCheckpointLayoutOfSpecSection2) {
  const ModelConfig c = parse_model_config(reference_config(), "ref");
  const auto specs = expected_tensors(c);
  std::size_t vision = 0;
  std::size_t text = 0;
  for (const TensorSpec& spec : specs) {
    if (spec.name.rfind("model.visual.", 0) == 0) ++vision;
    if (spec.name.rfind("model.language_model.", 0) == 0) ++text;
  }
  // docs/model-math.md §2.1: 3 + 12*depth + 6 + 6*levels vision tensors; §2.2: 1 + 11*layers + 1 text tensors.
  EXPECT_EQ(vision, static_cast<std::size_t>(3 + 12 * c.vision.depth + 6 + 6 * 3));
  EXPECT_EQ(text, static_cast<std::size_t>(2 + 11 * c.text.num_hidden_layers));
  const auto head = std::find_if(specs.begin(), specs.end(), [](const TensorSpec& s) { return s.name == names::kLmHead; });
  ASSERT_NE(head, specs.end());
  EXPECT_FALSE(head->required) << "tied checkpoints may omit lm_head";
}

}  // namespace
}  // namespace q3vl
