// MRoPE sections Hugging Face accepts but that are not the usual layout (clipped H/W slices, sums
// other than head_dim / 2, a negative entry, a fourth entry), against tests/fixtures/mrope made by
// tools/golden/gen_mrope_fixtures.py: the checkpoints open, mrope::slot_axes is HF's layout, the
// rotary tables it implies are HF's, and the exported decoder gives HF's logits at every position.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "export/text_export.h"
#include "math/mrope.h"
#include "model/checkpoint.h"
#include "engine/text_models.h"
#include "engine/vision_encoder.h"
#include "support/golden.h"
#include "support/test_support.h"
#include "util/files.h"
#include "util/npy.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path mrope_dir() { return test::source_dir() / "tests/fixtures/mrope"; }

struct MropeCase {
  std::string name;
  json entry;
  fs::path model_dir() const { return mrope_dir() / entry["model_dir"].get<std::string>(); }
  NpyArray load(const std::string& array) const {
    return read_npy(mrope_dir() / entry["dir"].get<std::string>() / entry["arrays"].at(array)["file"].get<std::string>());
  }
};

std::vector<MropeCase> mrope_cases() {
  const json manifest = json::parse(read_text_file(mrope_dir() / "manifest.json"));
  std::vector<MropeCase> out;
  for (const auto& [name, entry] : manifest["cases"].items()) out.push_back({name, entry});
  return out;
}

TEST(MropeGolden, OddSectionsGiveHfsLayoutTablesAndLogits) {
  const std::vector<MropeCase> cases = mrope_cases();
  ASSERT_EQ(cases.size(), 4u);
  test::TempDir packages;
  OnnxEnvironment env;
  int checked = 0;
  for (const MropeCase& c : cases) {
    SCOPED_TRACE(c.name);
    const Checkpoint ckpt = Checkpoint::open(c.model_dir());
    const TextConfig& t = ckpt.config().text;
    EXPECT_EQ(t.mrope_section, c.entry["mrope_section"].get<std::vector<std::int64_t>>());
    EXPECT_FALSE(mrope::layout_notes(t.mrope_section, t.head_dim).empty());

    const std::vector<std::int64_t> axes = mrope::slot_axes(t.mrope_section, t.head_dim);
    EXPECT_EQ(axes, c.load("hf_slot_axes").as_int64());

    // cos/sin rows [S, head_dim] = [angles, angles], angle j = position[axis(j)] * inv[j].
    const std::vector<float> inv = mrope::inverse_frequencies(t.rope_theta, t.head_dim);
    const std::vector<std::int64_t> positions = c.load("position_ids").as_int64();
    const std::size_t S = positions.size() / 3;
    const std::size_t half = static_cast<std::size_t>(t.head_dim / 2);
    std::vector<float> cos_table, sin_table;
    for (std::size_t s = 0; s < S; ++s) {
      for (std::size_t copy = 0; copy < 2; ++copy) {
        for (std::size_t j = 0; j < half; ++j) {
          const float angle = static_cast<float>(positions[static_cast<std::size_t>(axes[j]) * S + s]) * inv[j];
          cos_table.push_back(std::cos(angle));
          sin_table.push_back(std::sin(angle));
        }
      }
    }
    EXPECT_LT(test::compare(cos_table, c.load("rotary_cos").as_float()).max_abs, 1e-6);
    EXPECT_LT(test::compare(sin_table, c.load("rotary_sin").as_float()).max_abs, 1e-6);

    const fs::path dir = packages / c.name;
    fs::create_directories(dir);
    TextExportOptions options;
    options.all_logits = true;
    export_embedding(ckpt, dir);
    export_text(ckpt, options, dir);
    EmbeddingModel embedding(env, dir / "embedding.onnx", ckpt.config());
    const DecoderModel decoder_model(env, dir / "text.onnx", ckpt.config());
    KvCache decoder = decoder_model.new_cache();
    const VisualFeatures features = join_visual_features(c.load("image_features").as_float(),
                                                         c.load("deepstack_features").as_float(), t.hidden_size);
    const DecoderOutput out = decoder_model.forward(decoder, embedding.embed(c.load("input_ids").as_int64(), &features), positions);
    const test::Difference d = test::compare(out.logits, c.load("prefill_logits").as_float());
    EXPECT_LT(d.relative(), 1e-4) << "max abs " << d.max_abs;
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

}  // namespace
}  // namespace q3vl
