// HF's video sampling, clip-level smart_resize and frame-pair timestamps against the table
// tools/golden/gen_video_fixtures.py wrote with HF's own functions (tests/fixtures/video/sampling.json),
// and the patch order of frame pairs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "media/image_preprocess.h"
#include "media/video_preprocess.h"
#include "q3vl/error.h"
#include "support/test_support.h"
#include "util/files.h"

namespace q3vl {
namespace {

const nlohmann::json& sampling_table() {
  static const nlohmann::json table =
      nlohmann::json::parse(read_text_file(test::source_dir() / "tests" / "fixtures" / "video" / "sampling.json"));
  return table;
}

TEST(VideoSampling, FrameIndicesAndTimestampsEqualHfs) {
  int checked = 0;
  for (const auto& row : sampling_table()["sampling"]) {
    VideoPreprocessOptions options;
    options.fps = row["fps"].get<double>();
    options.min_frames = row["min_frames"];
    options.max_frames = row["max_frames"];
    const std::int64_t total = row["total_frames"];
    const double rate = row["source_fps"];
    const std::vector<std::int64_t> indices = sample_frame_indices(total, rate, options);
    ASSERT_EQ(indices, row["indices"].get<std::vector<std::int64_t>>()) << row.dump().substr(0, 200);
    const std::vector<double> times = frame_pair_timestamps(indices, rate, 2);
    EXPECT_EQ(times, row["timestamps"].get<std::vector<double>>()) << total << " frames at " << rate;
    std::vector<std::string> texts;
    for (const double t : times) texts.push_back(timestamp_text(t));
    EXPECT_EQ(texts, row["timestamps_text"].get<std::vector<std::string>>());
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(sampling_table()["sampling"].size()));
  EXPECT_GE(checked, 100);
}

TEST(VideoSampling, ClipSmartResizeEqualsHfsIncludingItsErrors) {
  int checked = 0, errors = 0;
  for (const auto& row : sampling_table()["smart_resize"]) {
    const auto call = [&] {
      return smart_resize_video(row["frames"], row["height"], row["width"], 2, 32, row["min_pixels"], row["max_pixels"]);
    };
    if (row.contains("error")) {
      EXPECT_THROW(call(), InvalidInput) << row.dump();
      ++errors;
    } else {
      const auto [height, width] = call();
      EXPECT_EQ((std::vector<std::int64_t>{height, width}), row["resized"].get<std::vector<std::int64_t>>()) << row.dump();
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(sampling_table()["smart_resize"].size()));
  EXPECT_GE(errors, 3);
}

TEST(VideoSampling, BadClipHeadersAreRefused) {
  const VideoPreprocessOptions options;
  EXPECT_THROW(sample_frame_indices(0, 30, options), InvalidInput);
  EXPECT_THROW(sample_frame_indices(10, 0, options), InvalidInput);
  EXPECT_THROW(sample_frame_indices(10, std::nan(""), options), InvalidInput);
  EXPECT_THROW(sample_frame_indices(-5, 30, options), InvalidInput);
  // A header claiming an absurd frame count still samples at most max_frames frames.
  EXPECT_EQ(sample_frame_indices(std::int64_t{1} << 50, 1e-3, options).size(), static_cast<std::size_t>(options.max_frames));
}

// Frame pair t of a clip fills the two temporal slots of rows [t*h*w, (t+1)*h*w); an odd count
// repeats the last frame; an image is the same frame twice.
TEST(VideoSampling, PatchRowsHoldConsecutiveFramesAndAnOddClipRepeatsItsLast) {
  ModelConfig config;
  config.vision.patch_size = 2;
  config.vision.temporal_patch_size = 2;
  config.vision.spatial_merge_size = 2;
  config.vision.in_channels = 3;
  PreprocessOptions identity;
  identity.mean = {0, 0, 0};
  identity.std = {1, 1, 1};
  identity.rescale_factor = 1.0;
  std::vector<RgbImage> frames(3);
  for (std::size_t f = 0; f < frames.size(); ++f) {
    frames[f].width = 4;
    frames[f].height = 4;
    frames[f].pixels.assign(48, static_cast<std::uint8_t>(10 * (f + 1)));
  }
  std::vector<const RgbImage*> pointers = {&frames[0], &frames[1], &frames[2]};
  const GridThw grid{2, 2, 2};
  const std::vector<float> rows = patchify_frames(pointers, grid, config.vision, identity);
  const std::int64_t row_size = 3 * 2 * 2 * 2;
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(grid.patches() * row_size));
  auto slot_value = [&](std::int64_t row, std::int64_t slot) { return rows[static_cast<std::size_t>(row * row_size + slot * 4)]; };
  for (std::int64_t row = 0; row < 4; ++row) {
    EXPECT_EQ(slot_value(row, 0), 10);
    EXPECT_EQ(slot_value(row, 1), 20);
  }
  for (std::int64_t row = 4; row < 8; ++row) {
    EXPECT_EQ(slot_value(row, 0), 30);
    EXPECT_EQ(slot_value(row, 1), 30);  // padded with the last frame
  }
  EXPECT_THROW(patchify_frames(pointers, GridThw{1, 2, 2}, config.vision, identity), InvalidInput);  // 3 frames, 2 slots
}

}  // namespace
}  // namespace q3vl
