#include "engine/turn_trace.h"

#include "util/npy.h"
#include "util/output_dir.h"

namespace q3vl {

void TurnTrace::write(const std::filesystem::path& dir, const ModelConfig& config) const {
  // Staged and swapped in whole: no stale .npy of an earlier dump beside these, no truncated one
  // after a failure, and a folder that is not an earlier dump of ours is never replaced.
  OutputDir out(dir, {.kind = "dump", .option = "--dump", .replace = true, .force_option = "", .inputs = {}});
  const std::filesystem::path& stage = out.begin(WriteMode::Replace);
  const std::int64_t S = static_cast<std::int64_t>(input_ids.size());
  write_npy(stage / "input_ids.npy", std::span<const std::int64_t>(input_ids), {1, S});
  write_npy(stage / "position_ids.npy", std::span<const std::int64_t>(position_ids), {3, 1, S});
  const std::vector<std::int64_t> delta = {rope_delta};
  write_npy(stage / "rope_deltas.npy", std::span<const std::int64_t>(delta), {1, 1});
  write_npy(stage / "logits.npy", std::span<const float>(prefill_logits), {1, static_cast<std::int64_t>(prefill_logits.size())});
  write_npy(stage / "output_ids.npy", std::span<const std::int64_t>(output_ids), {1, static_cast<std::int64_t>(output_ids.size())});
  const std::int64_t width = config.vision.patch_input_size();
  const std::int64_t H = config.text.hidden_size;
  const SplitVisualFeatures split = split_visual_features(features, H);
  // The rows of one kind (images or videos), in turn order: pixels, grids and both feature outputs.
  struct KindRows {
    std::vector<float> pixels, merged, deepstack;
    std::vector<std::int64_t> thw;
    std::int64_t patches = 0, tokens = 0;
  };
  KindRows kinds[2];
  std::int64_t patch_row = 0, token_row = 0;
  for (std::size_t i = 0; i < grids.size(); ++i) {
    KindRows& rows = kinds[i < is_video.size() && is_video[i] ? 1 : 0];
    const GridThw& g = grids[i];
    rows.pixels.insert(rows.pixels.end(), pixel_values.begin() + patch_row * width,
                       pixel_values.begin() + (patch_row + g.patches()) * width);
    rows.merged.insert(rows.merged.end(), split.merged.begin() + token_row * H, split.merged.begin() + (token_row + g.tokens()) * H);
    rows.thw.insert(rows.thw.end(), {g.t, g.h, g.w});
    rows.patches += g.patches();
    rows.tokens += g.tokens();
    patch_row += g.patches();
    token_row += g.tokens();
  }
  // DeepStack levels are [K, tokens, H]: each level's rows split the same way.
  for (std::int64_t level = 0; level < split.levels; ++level) {
    std::int64_t row = 0;
    for (std::size_t i = 0; i < grids.size(); ++i) {
      KindRows& rows = kinds[i < is_video.size() && is_video[i] ? 1 : 0];
      const auto begin = split.deepstack.begin() + (level * features.tokens + row) * H;
      rows.deepstack.insert(rows.deepstack.end(), begin, begin + grids[i].tokens() * H);
      row += grids[i].tokens();
    }
  }
  const char* names[2][5] = {{"pixel_values", "image_grid_thw", "image_features", "deepstack_features", ""},
                             {"pixel_values_videos", "video_grid_thw", "video_features", "video_deepstack_features", ""}};
  for (int kind = 0; kind < 2; ++kind) {
    const KindRows& rows = kinds[kind];
    if (rows.thw.empty()) continue;
    const auto items = static_cast<std::int64_t>(rows.thw.size() / 3);
    write_npy(stage / (std::string(names[kind][0]) + ".npy"), std::span<const float>(rows.pixels), {rows.patches, width});
    write_npy(stage / (std::string(names[kind][1]) + ".npy"), std::span<const std::int64_t>(rows.thw), {items, 3});
    write_npy(stage / (std::string(names[kind][2]) + ".npy"), std::span<const float>(rows.merged), {rows.tokens, H});
    write_npy(stage / (std::string(names[kind][3]) + ".npy"), std::span<const float>(rows.deepstack), {split.levels, rows.tokens, H});
  }
  if (!kinds[1].thw.empty()) {
    write_npy(stage / "frame_indices.npy", std::span<const std::int64_t>(frame_indices),
              {static_cast<std::int64_t>(frame_indices.size())});
    write_npy(stage / "timestamps.npy", std::span<const double>(timestamps), {static_cast<std::int64_t>(timestamps.size())});
  }
  out.commit();
}

}  // namespace q3vl
