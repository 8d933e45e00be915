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
  if (!grids.empty()) {
    const std::int64_t width = config.vision.patch_input_size();
    write_npy(stage / "pixel_values.npy", std::span<const float>(pixel_values),
              {static_cast<std::int64_t>(pixel_values.size()) / width, width});
    std::vector<std::int64_t> thw;
    for (const GridThw& g : grids) thw.insert(thw.end(), {g.t, g.h, g.w});
    write_npy(stage / "image_grid_thw.npy", std::span<const std::int64_t>(thw), {static_cast<std::int64_t>(grids.size()), 3});
    const std::int64_t H = config.text.hidden_size;
    const SplitVisualFeatures split = split_visual_features(features, H);
    write_npy(stage / "image_features.npy", std::span<const float>(split.merged), {features.tokens, H});
    write_npy(stage / "deepstack_features.npy", std::span<const float>(split.deepstack), {split.levels, features.tokens, H});
  }
  out.commit();
}

}  // namespace q3vl
