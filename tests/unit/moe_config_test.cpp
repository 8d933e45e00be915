// Qwen3-VL MoE configs (qwen3_vl_moe): the MoE fields and HF's defaults, the sparse-layer rule,
// refusals by field name, the written-back config, the expert-layout rule, the tensors a MoE
// checkpoint must hold, and the random MoE presets.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "model/expert_layout.h"
#include "model/random_checkpoint.h"
#include "model/tensor_names.h"
#include "q3vl/error.h"
#include "support/test_support.h"
#include "util/files.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The config transformers 5.12 saved for the MoE golden model (it writes num_local_experts).
json moe_fixture_config() {
  return json::parse(read_text_file(test::golden_dir() / "moe" / "models" / "moe_a" / "config.json"));
}

template <typename T>
void expect_rejected(const json& config, const std::string& needle) {
  try {
    parse_model_config(config, "config.json");
    FAIL() << "accepted a config that should fail with: " << needle;
  } catch (const T& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
}

TEST(MoeConfig, ReadsTheMoeFieldsOfATransformers5Config) {
  const json raw = moe_fixture_config();
  const json& text = raw["text_config"];
  const ModelConfig c = parse_model_config(raw, "config.json");
  ASSERT_TRUE(c.text.moe.has_value());
  EXPECT_EQ(c.text.moe->experts, text["num_local_experts"].get<std::int64_t>());
  EXPECT_EQ(c.text.moe->experts_per_token, text["num_experts_per_tok"].get<std::int64_t>());
  EXPECT_EQ(c.text.moe->intermediate_size, text["moe_intermediate_size"].get<std::int64_t>());
  EXPECT_EQ(c.text.moe->sparse_step, text["decoder_sparse_step"].get<std::int64_t>());
  EXPECT_EQ(c.text.moe->mlp_only_layers, text["mlp_only_layers"].get<std::vector<std::int64_t>>());
  EXPECT_EQ(c.text.intermediate_size, text["intermediate_size"].get<std::int64_t>());
  // The 4.57 name (released checkpoints) reads the same.
  json v457 = raw;
  v457["text_config"]["num_experts"] = v457["text_config"]["num_local_experts"];
  v457["text_config"].erase("num_local_experts");
  EXPECT_EQ(parse_model_config(v457, "config.json").text.moe->experts, c.text.moe->experts);
  // A dense config has no MoE part and no sparse layer.
  const ModelConfig dense = load_model_config(test::reference_model_files() / "config.json");
  EXPECT_FALSE(dense.text.moe.has_value());
  for (std::int64_t l = 0; l < dense.text.num_hidden_layers; ++l) EXPECT_FALSE(dense.text.sparse_layer(l));
}

TEST(MoeConfig, AbsentFieldsTakeQwen3VLMoeTextConfigDefaults) {
  // transformers 5.12: num_experts 60, num_experts_per_tok 4, moe_intermediate_size 1408,
  // decoder_sparse_step 1, mlp_only_layers [], num_key_value_heads 16, head_dim hidden / heads.
  json config = moe_fixture_config();
  json& text = config["text_config"];
  for (const char* key : {"num_local_experts", "num_experts_per_tok", "moe_intermediate_size", "decoder_sparse_step",
                          "mlp_only_layers", "num_key_value_heads", "head_dim", "norm_topk_prob"}) {
    text.erase(key);
  }
  text["num_attention_heads"] = 16;  // a multiple of the 16 default KV heads
  const ModelConfig c = parse_model_config(config, "c");
  EXPECT_EQ(c.text.moe->experts, 60);
  EXPECT_EQ(c.text.moe->experts_per_token, 4);
  EXPECT_EQ(c.text.moe->intermediate_size, 1408);
  EXPECT_EQ(c.text.moe->sparse_step, 1);
  EXPECT_TRUE(c.text.moe->mlp_only_layers.empty());
  EXPECT_TRUE(c.text.moe->norm_topk_prob);
  EXPECT_EQ(c.text.num_key_value_heads, 16);
  EXPECT_EQ(c.text.head_dim, c.text.hidden_size / c.text.num_attention_heads);
}

TEST(MoeConfig, SparseLayersFollowHfsRule) {
  MoeConfig m;
  m.experts = 8;
  m.experts_per_token = 2;
  m.sparse_step = 1;
  m.mlp_only_layers = {2};
  EXPECT_TRUE(m.sparse_layer(0));
  EXPECT_TRUE(m.sparse_layer(1));
  EXPECT_FALSE(m.sparse_layer(2));  // listed in mlp_only_layers
  EXPECT_TRUE(m.sparse_layer(3));
  m.mlp_only_layers.clear();
  m.sparse_step = 2;  // (l + 1) % 2 == 0: layers 1, 3, ...
  EXPECT_FALSE(m.sparse_layer(0));
  EXPECT_TRUE(m.sparse_layer(1));
  EXPECT_FALSE(m.sparse_layer(2));
  EXPECT_TRUE(m.sparse_layer(3));
  m.experts = 0;  // no experts: every layer dense
  EXPECT_FALSE(m.sparse_layer(1));
}

TEST(MoeConfig, BadValuesAreRefusedByName) {
  auto with = [](const char* key, const json& value) {
    json config = moe_fixture_config();
    config["text_config"][key] = value;
    return config;
  };
  expect_rejected<InvalidInput>(with("num_local_experts", -1), "num_local_experts");
  expect_rejected<InvalidInput>(with("num_local_experts", "eight"), "num_local_experts");
  expect_rejected<InvalidInput>(with("num_experts_per_tok", 0), "num_experts_per_tok");
  expect_rejected<InvalidInput>(with("num_experts_per_tok", 9), "num_experts_per_tok");
  expect_rejected<InvalidInput>(with("moe_intermediate_size", 0), "moe_intermediate_size");
  expect_rejected<InvalidInput>(with("decoder_sparse_step", 0), "decoder_sparse_step");
  expect_rejected<InvalidInput>(with("mlp_only_layers", json::array({4})), "mlp_only_layers");
  expect_rejected<InvalidInput>(with("mlp_only_layers", json::array({-1})), "mlp_only_layers");
  expect_rejected<InvalidInput>(with("mlp_only_layers", "2"), "mlp_only_layers");
  expect_rejected<Unsupported>(with("norm_topk_prob", false), "norm_topk_prob");
}

TEST(MoeConfig, WrittenConfigIsAQwen3VLMoeConfigThatReadsBack) {
  const ModelConfig c = parse_model_config(moe_fixture_config(), "config.json");
  const json written = to_config_json(c);
  EXPECT_EQ(written["model_type"], "qwen3_vl_moe");
  EXPECT_EQ(written["architectures"], json::array({"Qwen3VLMoeForConditionalGeneration"}));
  EXPECT_EQ(written["text_config"]["model_type"], "qwen3_vl_moe_text");
  const ModelConfig back = parse_model_config(written, "written");
  EXPECT_EQ(to_config_json(back), written);
  EXPECT_EQ(back.text.moe->experts, c.text.moe->experts);
  EXPECT_EQ(back.text.moe->mlp_only_layers, c.text.moe->mlp_only_layers);
  // A dense config stays a dense one.
  const json dense = to_config_json(load_model_config(test::reference_model_files() / "config.json"));
  EXPECT_EQ(dense["model_type"], "qwen3_vl");
  EXPECT_FALSE(dense["text_config"].contains("num_experts"));
}

TEST(ExpertLayout, HfsRuleDecidesByTheInMemoryShapeFirst) {
  const std::int64_t E = 4, out = 6, in = 10;
  EXPECT_EQ(expert_tensor_shape(ExpertLayout::OutIn, E, out, in), (std::vector<std::int64_t>{E, out, in}));
  EXPECT_EQ(expert_tensor_shape(ExpertLayout::InOut, E, out, in), (std::vector<std::int64_t>{E, in, out}));
  EXPECT_EQ(expert_layout({E, out, in}, E, out, in, "t"), ExpertLayout::OutIn);
  EXPECT_EQ(expert_layout({E, in, out}, E, out, in, "t"), ExpertLayout::InOut);
  // Square experts are ambiguous: HF takes them as its in-memory layout, untransposed.
  EXPECT_EQ(expert_layout({E, in, in}, E, in, in, "t"), ExpertLayout::OutIn);
  try {
    expert_layout({E, out, out}, E, out, in, "layers.0.mlp.experts.down_proj");
    FAIL() << "accepted a shape that is neither layout";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("layers.0.mlp.experts.down_proj"), std::string::npos) << e.what();
  }
}

TEST(MoeTensors, SparseLayersHoldRouterAndExpertsDenseLayersTheMlp) {
  const ModelConfig c = random_checkpoint_config("moe");
  const TextConfig& t = c.text;
  const std::vector<TensorSpec> specs = expected_tensors(c);
  EXPECT_EQ(specs.size(), expected_tensor_count(c));
  auto find = [&](const std::string& name) -> const TensorSpec* {
    for (const TensorSpec& spec : specs) {
      if (spec.name == name) return &spec;
    }
    return nullptr;
  };
  for (std::int64_t l = 0; l < t.num_hidden_layers; ++l) {
    SCOPED_TRACE(l);
    const bool sparse = t.sparse_layer(l);
    EXPECT_EQ(find(names::text_layer(l, "mlp.gate_proj.weight")) != nullptr, !sparse);
    const TensorSpec* router = find(names::text_layer(l, names::kRouterLeaf));
    const TensorSpec* gate_up = find(names::text_layer(l, names::kExpertsGateUpLeaf));
    const TensorSpec* down = find(names::text_layer(l, names::kExpertsDownLeaf));
    ASSERT_EQ(router != nullptr && gate_up != nullptr && down != nullptr, sparse);
    if (!sparse) continue;
    const MoeConfig& m = *t.moe;
    EXPECT_EQ(router->shape, (std::vector<std::int64_t>{m.experts, t.hidden_size}));
    EXPECT_EQ(gate_up->shape, expert_tensor_shape(ExpertLayout::OutIn, m.experts, 2 * m.intermediate_size, t.hidden_size));
    EXPECT_EQ(gate_up->alternative_shape, expert_tensor_shape(ExpertLayout::InOut, m.experts, 2 * m.intermediate_size, t.hidden_size));
    EXPECT_EQ(down->shape, expert_tensor_shape(ExpertLayout::OutIn, m.experts, t.hidden_size, m.intermediate_size));
    EXPECT_EQ(down->alternative_shape, expert_tensor_shape(ExpertLayout::InOut, m.experts, t.hidden_size, m.intermediate_size));
  }
}

TEST(MoePresets, TinyMoeCheckpointOpensAndRealShapesCanBeCut) {
  test::TempDir dir;
  RandomCheckpointOptions options;
  options.tokenizer_dir = test::fake_tokenizer_dir(dir);
  options.show_progress = false;
  write_random_checkpoint(random_checkpoint_config("moe"), dir / "m", options);
  const Checkpoint ckpt = Checkpoint::open(dir / "m");
  EXPECT_TRUE(ckpt.config().text.moe.has_value());
  EXPECT_TRUE(ckpt.unexpected_tensors().empty());
  // 30B-A3B shapes with a few layers (benchmarks); fewer layers than DeepStack levels is refused.
  const ModelConfig full = random_checkpoint_config("30b-a3b");
  ASSERT_TRUE(full.text.moe.has_value());
  const ModelConfig cut = with_text_layers(full, 4);
  EXPECT_EQ(cut.text.num_hidden_layers, 4);
  EXPECT_EQ(cut.text.moe->experts, full.text.moe->experts);
  EXPECT_THROW(with_text_layers(full, 2), InvalidInput);
}

TEST(MoePresets, LargestMoeHasTheHubShapes) {
  // Qwen3-VL-235B-A22B's config.json as the shared spec transcribes it (§1.2).
  const ModelConfig c = random_checkpoint_config("235b-a22b");
  ASSERT_TRUE(c.text.moe.has_value());
  EXPECT_EQ(c.text.hidden_size, 4096);
  EXPECT_EQ(c.text.num_hidden_layers, 94);
  EXPECT_EQ(c.text.num_attention_heads, 64);
  EXPECT_EQ(c.text.num_key_value_heads, 4);
  EXPECT_EQ(c.text.head_dim, 128);
  EXPECT_EQ(c.text.moe->experts, 128);
  EXPECT_EQ(c.text.moe->experts_per_token, 8);
  EXPECT_EQ(c.text.moe->intermediate_size, 1536);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.vision.depth, 27);
  EXPECT_EQ(c.vision.hidden_size, 1152);
  EXPECT_EQ(c.vision.out_hidden_size, 4096);
  EXPECT_EQ(c.vision.deepstack_visual_indexes, (std::vector<std::int64_t>{8, 16, 24}));
}

}  // namespace
}  // namespace q3vl
