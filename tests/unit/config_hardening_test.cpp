// Hostile or odd values in the JSON files q3vl reads (config.json, generation and preprocessor
// configs, q3vl_package.json): every refusal names the file and the field, nothing proportional to
// a declared size is allocated before the size is checked against the files, and what Hugging
// Face accepts (odd mrope_section values, its defaults) is accepted.
#include <gtest/gtest.h>

#include <functional>

#include <nlohmann/json.hpp>

#include "package/format.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/generation_config.h"
#include "model/preprocessor_config.h"
#include "model/random_checkpoint.h"
#include "model/safetensors.h"
#include "model/tensor_names.h"
#include "q3vl/error.h"
#include "package/package.h"
#include "support/test_support.h"
#include "util/files.h"
#include "util/json_fields.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json reference_config() { return json::parse(read_text_file(test::reference_model_files() / "config.json")); }

// The message of the InvalidInput `f` throws ("" if it throws nothing).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "";
}

std::string config_error(const std::function<void(json&)>& edit) {
  json config = reference_config();
  edit(config);
  return error_of([&] { parse_model_config(config, "DIR/config.json"); });
}

TEST(JsonField, TypeErrorsNameTheFileAndTheFieldPath) {
  const json doc = json::parse(R"({"config": {"text_config": {"hidden_size": "64"}}, "list": [1, "x"]})");
  const JsonField root(doc, "PKG/q3vl_package.json");
  EXPECT_EQ(error_of([&] { root.at("config").at("text_config").at("hidden_size").integer(); }),
            "PKG/q3vl_package.json: field \"config.text_config.hidden_size\": expected an integer, got string \"64\"");
  EXPECT_EQ(error_of([&] { root.at("config").at("missing"); }), "PKG/q3vl_package.json: missing field \"config.missing\"");
  EXPECT_EQ(error_of([&] { root.at("list").integers(8); }),
            "PKG/q3vl_package.json: field \"list[1]\": expected an integer, got string \"x\"");
  EXPECT_NE(error_of([&] { root.at("list").integers(1); }).find("at most 1"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_json_bounded(R"({"eps": 1e400})", "x.json"); }).find("x.json: not valid JSON"), std::string::npos);
  const json big = json::parse("18446744073709551615");
  EXPECT_NE(error_of([&] { JsonField(big, "f").integer(); }).find("out of range"), std::string::npos);
}

TEST(JsonField, DeepNestingIsRefusedBeforeItIsBuilt) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_NE(error_of([&] { parse_json_bounded(deep, "x.json"); }).find("nested deeper than 64"), std::string::npos);
  const std::string ok = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_NO_THROW(parse_json_bounded(ok, "x.json"));
  EXPECT_NE(error_of([&] { parse_json_bounded("{\"a\": ", "x.json"); }).find("x.json: not valid JSON"), std::string::npos);
  // Duplicate keys: the last one wins, as in Python's json (what HF reads).
  EXPECT_EQ(parse_json_bounded(R"({"a": 1, "a": 2})", "x.json")["a"], 2);
}

TEST(ModelConfigHardening, FloatFieldsThatGiveNanAreRefusedWithTheirName) {
  for (const json& theta : {json(0), json(-5.0), json(1e-50), json("5e6")}) {
    const std::string error = config_error([&](json& c) { c["text_config"]["rope_theta"] = theta; });
    EXPECT_NE(error.find("DIR/config.json: field \"text_config.rope_theta\""), std::string::npos) << theta << ": " << error;
  }
  for (const json& eps : {json(0), json(-1e-6), json(1e300)}) {
    const std::string error = config_error([&](json& c) { c["text_config"]["rms_norm_eps"] = eps; });
    EXPECT_NE(error.find("field \"text_config.rms_norm_eps\""), std::string::npos) << eps << ": " << error;
  }
}

TEST(ModelConfigHardening, SizesAreBoundedAndConsistent) {
  int cases = 0;
  const auto expect = [&](const std::function<void(json&)>& edit, const std::string& needle) {
    const std::string error = config_error(edit);
    EXPECT_NE(error.find(needle), std::string::npos) << "wanted '" << needle << "', got: " << error;
    ++cases;
  };
  expect([](json& c) { c["text_config"]["num_hidden_layers"] = 0; }, "\"text_config.num_hidden_layers\": must be a positive");
  expect([](json& c) { c["text_config"]["vocab_size"] = -3; }, "\"text_config.vocab_size\": must be a positive");
  expect([](json& c) { c["text_config"]["hidden_size"] = 1ll << 40; }, "\"text_config.hidden_size\": 1099511627776 is implausibly large");
  expect([](json& c) { c["vision_config"]["depth"] = 4.0; }, "\"vision_config.depth\": expected an integer, got number");
  expect([](json& c) { c["vision_config"]["patch_size"] = 1 << 20; }, "patch_size");
  expect([](json& c) { c["text_config"]["num_key_value_heads"] = 7; }, "num_key_value_heads");
  expect([](json& c) { c["text_config"]["head_dim"] = 127; }, "head_dim (127) must be even");
  expect([](json& c) { c["vision_config"]["num_heads"] = 7; }, "vision_config.hidden_size (1024) is not a multiple of num_heads (7)");
  expect([](json& c) { c["vision_config"]["deepstack_visual_indexes"] = {5, 11, 24}; }, "deepstack_visual_indexes entry 24");
  expect([](json& c) { c["vision_config"]["deepstack_visual_indexes"] = {11, 5}; }, "strictly increasing");
  expect([](json& c) { c["vision_config"]["deepstack_visual_indexes"] = json::array({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25}); },
         "at most 24");
  expect([](json& c) { c["image_token_id"] = 151936; }, "image_token_id 151936 is outside the vocabulary");
  expect([](json& c) { c["vision_end_token_id"] = -1; }, "vision_end_token_id -1");
  expect([](json& c) { c["text_config"]["hidden_act"] = "gelu"; }, "\"text_config.hidden_act\": \"gelu\" is not supported");
  expect([](json& c) { c["text_config"] = json::array(); }, "field \"text_config\": expected an object, got array");
  expect([](json& c) { c["text_config"]["rope_scaling"]["mrope_section"] = {24, 20}; }, "needs 3 entries");
  expect([](json& c) { c["text_config"]["rope_scaling"]["mrope_section"] = {24, 20.5, 20}; }, "mrope_section[1]\": expected an integer");
  EXPECT_EQ(cases, 17);
}

TEST(ModelConfigHardening, MropeSectionsHfAcceptsAreAccepted) {
  // HF never checks the section: entries 1 and 2 are Python slice stops (tests/golden/mrope_golden_test
  // checks what it computes for them).
  const std::vector<std::vector<std::int64_t>> sections = {{24, 20, 19}, {24, 30, 30}, {0, -1, 2}, {9, 2, 1, 7}, {64, 0, 0}};
  for (const auto& section : sections) {
    json config = reference_config();
    config["text_config"]["rope_scaling"]["mrope_section"] = section;
    EXPECT_EQ(parse_model_config(config, "c").text.mrope_section, section);
  }
}

TEST(ModelConfigHardening, AbsentFieldsTakeHfsDefaults) {
  // Qwen3VLTextConfig: default_theta 500000, head_dim 128, num_key_value_heads 32 (None: = heads),
  // max_position_embeddings 128000.
  json config = reference_config();
  json& text = config["text_config"];
  for (const char* key : {"rope_theta", "head_dim", "num_key_value_heads", "max_position_embeddings"}) text.erase(key);
  text["num_attention_heads"] = 32;
  ModelConfig c = parse_model_config(config, "c");
  EXPECT_EQ(c.text.rope_theta, 500000.0);
  EXPECT_EQ(c.text.head_dim, 128);
  EXPECT_EQ(c.text.num_key_value_heads, 32);
  EXPECT_EQ(c.text.max_position_embeddings, 128000);
  text["num_key_value_heads"] = nullptr;
  text["num_attention_heads"] = 16;
  EXPECT_EQ(parse_model_config(config, "c").text.num_key_value_heads, 16);
}

TEST(ConfigFitsFiles, ExpectedTensorCountIsTheListedCount) {
  for (bool tied : {true, false}) {
    const ModelConfig c = test::small_vocab_tiny_config(tied);
    EXPECT_EQ(expected_tensor_count(c), expected_tensors(c).size());
  }
  const ModelConfig real = parse_model_config(reference_config(), "c");
  EXPECT_EQ(expected_tensor_count(real), expected_tensors(real).size());
}

TEST(ConfigFitsFiles, HugeLayerCountsAreRefusedBeforeListingTensors) {
  test::TempDir dir;
  RandomCheckpointOptions options;
  options.tokenizer_dir = test::fake_tokenizer_dir(dir);
  options.show_progress = false;
  write_random_checkpoint(test::small_vocab_tiny_config(true), dir / "model", options);
  const std::string original = read_text_file(dir / "model" / "config.json");
  for (const auto& [section, key] : {std::pair{"text_config", "num_hidden_layers"}, std::pair{"vision_config", "depth"}}) {
    json config = json::parse(original);
    config[section][key] = 1000000000;
    if (std::string(key) == "num_hidden_layers") config["vision_config"]["deepstack_visual_indexes"] = {0};
    write_text_file(dir / "model" / "config.json", config.dump());
    const std::string error = error_of([&] { Checkpoint::open(dir / "model"); });
    EXPECT_NE(error.find("config.json: " + std::string(section) + "." + key + " = 1000000000 needs"), std::string::npos) << error;
  }
}

TEST(SafetensorsHardening, DtypeOfTheWrongTypeIsNamed) {
  const std::string header = R"({"w": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}})";
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>(header.size() >> (8 * i));
  bytes += header + std::string(4, '\0');
  const std::vector<std::uint8_t> file(bytes.begin(), bytes.end());
  EXPECT_EQ(error_of([&] { parse_safetensors_header(file, "m.safetensors"); }),
            "m.safetensors: tensor \"w\": dtype must be a string, got integer");
}

TEST(GenerationConfigHardening, RangesAndTypesAreNamed) {
  const ModelConfig config = parse_model_config(reference_config(), "c");
  int cases = 0;
  const auto expect = [&](const char* text, const std::string& needle) {
    const std::string error = error_of([&] { parse_generation_config(json::parse(text), config, "G/generation_config.json"); });
    EXPECT_NE(error.find(needle), std::string::npos) << text << ": " << error;
    ++cases;
  };
  expect(R"({"do_sample": true, "temperature": 0})", "field \"temperature\": must be a positive number");
  expect(R"({"temperature": -1})", "field \"temperature\"");
  expect(R"({"top_p": 0})", "field \"top_p\": must be in (0, 1]");
  expect(R"({"min_p": 2})", "field \"min_p\"");
  expect(R"({"top_k": -1})", "field \"top_k\"");
  expect(R"({"repetition_penalty": 0})", "field \"repetition_penalty\"");
  expect(R"({"do_sample": "yes"})", "field \"do_sample\": expected true or false");
  expect(R"({"eos_token_id": [151645, "x"]})", "field \"eos_token_id[1]\"");
  expect(R"({"eos_token_id": 151936})", "outside the vocabulary of 151936");
  expect(R"([])", "G/generation_config.json: expected an object");
  EXPECT_EQ(cases, 10);
  // HF's greedy configs carry temperature 0 without complaint.
  EXPECT_NO_THROW(parse_generation_config(json::parse(R"({"do_sample": false, "temperature": 0.0})"), config));
}

TEST(PreprocessorConfigHardening, TypesAreNamed) {
  EXPECT_NE(error_of([] { read_preprocess_options(json::parse(R"({"size": {"longest_edge": "big"}})"), "P.json"); })
                .find("P.json: field \"size.longest_edge\": expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of([] { read_preprocess_options(json::parse(R"({"image_mean": [0.5, 0.5]})"), "P.json"); })
                .find("field \"image_mean\""),
            std::string::npos);
  EXPECT_NE(error_of([] { read_preprocess_options(json::parse(R"({"rescale_factor": 0})"), "P.json"); }).find("rescale_factor"),
            std::string::npos);
}

// A valid manifest with an int4 text part.
json minimal_manifest() {
  const ModelConfig config = parse_model_config(reference_config(), "c");
  return {{"format", "q3vl-package"},
          {"format_version", 1},
          {"config", reference_config()},
          {"generation_config", json::object()},
          {"preprocessor_config", json::object()},
          {"visual_channel_width", package::visual_channel_width(config)},
          {"parts", {{"text", {{"file", "text.onnx"}, {"fp16", false}, {"linear", {{"weights", "int4"}}}}}}}};
}

// A manifest alone (no model files needed to read it).
std::string manifest_error(const std::function<void(json&)>& edit) {
  test::TempDir dir;
  json manifest = minimal_manifest();
  edit(manifest);
  write_text_file(dir / package::kManifest, manifest.dump());
  return error_of([&] { read_package_manifest(dir.path()); });
}

TEST(PackageManifest, EveryFieldIsChecked) {
  EXPECT_EQ(manifest_error([](json&) {}), "");
  int cases = 0;
  const auto expect = [&](const std::function<void(json&)>& edit, const std::string& needle) {
    const std::string error = manifest_error(edit);
    EXPECT_NE(error.find(needle), std::string::npos) << "wanted '" << needle << "', got: " << error;
    ++cases;
  };
  expect([](json& m) { m["format_version"] = 2; }, "field \"format_version\": 2: this package was written by a newer q3vl");
  expect([](json& m) { m["format_version"] = "1"; }, "field \"format_version\": expected an integer, got string");
  expect([](json& m) { m["format"] = "onnx"; }, "field \"format\": is \"onnx\"");
  expect([](json& m) { m.erase("format"); }, "missing field \"format\"");
  expect([](json& m) { m["config"]["text_config"]["hidden_size"] = "2560"; },
         "q3vl_package.json: field \"config.text_config.hidden_size\": expected an integer, got string");
  expect([](json& m) { m["visual_channel_width"] = 2560; }, "field \"visual_channel_width\": 2560 does not match");
  expect([](json& m) { m["parts"]["text"]["fp16"] = 1; }, "field \"parts.text.fp16\": expected true or false");
  expect([](json& m) { m["parts"]["text"]["linear"]["weights"] = "int3"; }, "field \"parts.text.linear.weights\"");
  expect([](json& m) { m["parts"]["video"] = json::object(); }, "field \"parts.video\": is not a package part");
  expect([](json& m) { m["generation_config"]["top_p"] = "0.9"; }, "field \"generation_config.top_p\": expected a number");
  expect([](json& m) { m["preprocessor_config"]["image_std"] = {0, 1, 1}; }, "field \"preprocessor_config.image_std\"");
  EXPECT_EQ(cases, 11);
}

// Which parts hold quantized linear layers: the runtime repacks a quantized vision encoder even
// when asked not to repack (ModelOptions::prepack_vision), and prepacks only quantized decoders.
TEST(PackageManifest, TellsFloatFromQuantizedParts) {
  test::TempDir dir;
  json manifest = minimal_manifest();
  manifest["parts"]["vision"] = {{"file", "vision.onnx"}, {"fp16", false}, {"linear", {{"weights", "int8"}}}};
  const auto read = [&] {
    write_text_file(dir / package::kManifest, manifest.dump());
    return read_package_manifest(dir.path());
  };
  EXPECT_FALSE(read().float_decoder);
  EXPECT_FALSE(read().float_vision);
  manifest["parts"]["vision"]["linear"]["weights"] = "fp32";
  manifest["parts"]["text"]["linear"]["weights"] = "fp32";
  EXPECT_TRUE(read().float_decoder);
  EXPECT_TRUE(read().float_vision);
  manifest["parts"]["vision"]["fp16"] = true;  // fp16 weights and compute: float, no MatMulNBits
  EXPECT_TRUE(read().float_vision);
}

}  // namespace
}  // namespace q3vl
