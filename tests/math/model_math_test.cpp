// The shared model math against the Hugging Face fixtures: 3-D positions and rope_deltas (exact),
// the patch geometry and position-embedding interpolation, and the MRoPE slot layout.
#include <gtest/gtest.h>

#include "math/mrope.h"
#include "math/rope_index.h"
#include "math/vision_geometry.h"
#include "model/checkpoint.h"
#include "model/tensor_names.h"
#include "q3vl/error.h"
#include "support/golden.h"
#include "support/test_support.h"

namespace q3vl {
namespace {

TEST(RopeIndex, PositionsAndDeltasEqualHfExactly) {
  for (const test::GoldenCase& c : test::golden_cases()) {
    SCOPED_TRACE(c.name);
    const ModelConfig config = load_model_config(c.model_dir() / "config.json");
    const std::vector<std::int64_t> ids = c.load("input_ids").as_int64();
    const RopePositions p = rope_positions(ids, c.grids(), config.visual_pads());
    std::vector<std::int64_t> ours = p.t;
    ours.insert(ours.end(), p.h.begin(), p.h.end());
    ours.insert(ours.end(), p.w.begin(), p.w.end());
    EXPECT_EQ(ours, c.load("position_ids").as_int64());
    EXPECT_EQ(p.rope_delta, c.load("rope_deltas").as_int64()[0]);
  }
}

TEST(RopeIndex, PadsAndGridsMustAgree) {
  const ModelConfig config = load_model_config(test::reference_model_files() / "config.json");
  const std::int64_t pad = config.image_token_id;
  const std::vector<std::int64_t> ids = {1, pad, pad, pad, pad, 2};
  EXPECT_NO_THROW(rope_positions(ids, std::vector<GridThw>{{1, 4, 4}}, config.visual_pads()));
  EXPECT_THROW(rope_positions(ids, std::vector<GridThw>{}, config.visual_pads()), InvalidInput);
  EXPECT_THROW(rope_positions(ids, std::vector<GridThw>{{1, 4, 6}}, config.visual_pads()), InvalidInput);
  EXPECT_THROW(rope_positions(ids, std::vector<GridThw>{{1, 2, 4}}, config.visual_pads()), InvalidInput);
}

// An image, then a video whose frame pairs are separate blocks with text between them: HF's
// get_rope_index on the same ids.
TEST(RopeIndex, ImagesAndVideoFramePairsMatchHf) {
  const auto& cases = test::golden_manifest()["rope_cases"];
  ASSERT_FALSE(cases.empty());
  for (const auto& [name, entry] : cases.items()) {
    const test::GoldenCase c{name, entry};
    const std::vector<std::int64_t> thw = c.load("grids_in_order").as_int64();
    std::vector<GridThw> grids;
    for (std::size_t i = 0; i + 2 < thw.size(); i += 3) grids.push_back({thw[i], thw[i + 1], thw[i + 2]});
    const RopePositions p = rope_positions(c.load("input_ids").as_int64(), grids, c.config().visual_pads());
    std::vector<std::int64_t> ours = p.t;
    ours.insert(ours.end(), p.h.begin(), p.h.end());
    ours.insert(ours.end(), p.w.begin(), p.w.end());
    EXPECT_EQ(ours, c.load("position_ids").as_int64()) << name;
    EXPECT_EQ(p.rope_delta, c.load("rope_deltas").as_int64()[0]) << name;
  }
}

// The scalar instance of the shared geometry reproduces HF's interpolated position embedding.
TEST(VisionGeometry, PositionEmbeddingInterpolationMatchesHf) {
  std::size_t checked = 0;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (!c.has("vision_pos_embed")) continue;
    SCOPED_TRACE(c.name);
    ++checked;
    const Checkpoint ckpt = Checkpoint::open(c.model_dir());
    const std::vector<float> table = read_as_float(ckpt.tensor(names::kPositionEmbedding));
    const std::int64_t D = ckpt.config().vision.hidden_size;
    const std::int64_t side = ckpt.config().vision.position_grid_side();
    vision_geometry::ScalarArith a;
    std::vector<float> ours;
    for (const GridThw& g : c.grids()) {
      for (std::int64_t f = 0; f < g.t; ++f) {
        for (std::int64_t r = 0; r < g.h * g.w; ++r) {
          const auto [row, col] = vision_geometry::patch_row_col(a, r, g.w);
          const auto corners = vision_geometry::position_corners(a, row, col, g.h, g.w, side);
          for (std::int64_t d = 0; d < D; ++d) {
            float sum = 0;
            for (int k = 0; k < 4; ++k) sum += table[static_cast<std::size_t>(corners.index[k] * D + d)] * corners.weight[k];
            ours.push_back(sum);
          }
        }
      }
    }
    EXPECT_LT(test::compare(ours, c.load("vision_pos_embed").as_float()).relative(), 1e-6);
  }
  EXPECT_EQ(checked, test::golden_cases_with_images());
}

TEST(VisionGeometry, PatchOrderIsTwoByTwoBlocksRowMajor) {
  vision_geometry::ScalarArith a;
  // A 4 x 6 grid: rows 0..3 of pixel_values are the block at (0,0): (0,0) (0,1) (1,0) (1,1).
  std::vector<std::pair<std::int64_t, std::int64_t>> order;
  for (std::int64_t r = 0; r < 24; ++r) order.push_back(vision_geometry::patch_row_col(a, r, 6));
  EXPECT_EQ(order[0], std::make_pair(std::int64_t{0}, std::int64_t{0}));
  EXPECT_EQ(order[3], std::make_pair(std::int64_t{1}, std::int64_t{1}));
  EXPECT_EQ(order[4], std::make_pair(std::int64_t{0}, std::int64_t{2}));
  EXPECT_EQ(order[12], std::make_pair(std::int64_t{2}, std::int64_t{0}));
  std::sort(order.begin(), order.end());
  EXPECT_EQ(std::unique(order.begin(), order.end()), order.end()) << "every patch exactly once";
}

// docs/model-math.md §7.2 on the real config: H at j % 3 == 1 and W at j % 3 == 2 below 3 * section, T elsewhere;
// each axis owns exactly its section's count of slots.
TEST(Mrope, SlotLayoutIsInterleaved) {
  const TextConfig t = load_model_config(test::reference_model_files() / "config.json").text;
  const std::vector<std::int64_t> axes = mrope::slot_axes(t.mrope_section, t.head_dim);
  ASSERT_EQ(static_cast<std::int64_t>(axes.size()), t.head_dim / 2);
  std::int64_t counts[3] = {0, 0, 0};
  const std::int64_t interleaved = 3 * std::max(t.mrope_section[1], t.mrope_section[2]);
  for (std::size_t j = 0; j < axes.size(); ++j) {
    ++counts[axes[j]];
    if (static_cast<std::int64_t>(j) >= interleaved) {
      EXPECT_EQ(axes[j], 0) << j;
    } else {
      EXPECT_EQ(axes[j], static_cast<std::int64_t>(j % 3)) << j;
    }
  }
  for (int axis = 0; axis < 3; ++axis) EXPECT_EQ(counts[axis], t.mrope_section[static_cast<std::size_t>(axis)]);
}

}  // namespace
}  // namespace q3vl
