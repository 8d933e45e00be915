// Videos through the whole runtime against Hugging Face (tests/fixtures/video, made by
// tools/golden/gen_video_fixtures.py with HF's PyAV backend): clip files decoded in-process and
// extracted frames, sampled, resized, paired and timestamped like HF; input_ids, pixel values,
// grids, frame indices, timestamps and 3-D positions exact; video features and DeepStack levels
// within 1e-4; HF's greedy tokens; and a chat whose later turns follow a video.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/model_data.h"
#include "engine/turn_trace.h"
#include "q3vl/conversation.h"
#include "q3vl/error.h"
#include "support/full_model.h"
#include "support/golden.h"
#include "support/test_support.h"
#include "util/files.h"
#include "util/npy.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path video_fixtures() { return test::source_dir() / "tests" / "fixtures" / "video"; }

const json& video_manifest() {
  static const json manifest = json::parse(read_text_file(video_fixtures() / "manifest.json"));
  return manifest;
}

class VideoRuntime : public test::FullModelTest {};
using test::greedy;

// The case's media as the library takes them, in the manifest's (the turn's) order.
std::vector<Media> case_media(const json& entry, const fs::path& dir) {
  std::vector<Media> media;
  for (const json& item : entry["media"]) {
    const std::string kind = item["kind"];
    if (kind == "image") media.emplace_back(decode_image_file(dir / item["file"].get<std::string>()));
    if (kind == "video") media.emplace_back(VideoClip::from_file(dir / item["file"].get<std::string>()));
    if (kind == "frames") media.emplace_back(VideoClip::from_frame_folder(dir / item["dir"].get<std::string>(), item["fps"].get<double>()));
  }
  return media;
}

ConversationOptions case_options(const json& entry) {
  ConversationOptions options;
  if (entry.contains("system") && entry["system"].is_string()) options.system_prompt = entry["system"];
  const json& video = entry["video_options"];
  if (video.contains("fps")) options.video_fps = video["fps"].get<double>();
  if (video.contains("max_frames")) options.max_video_frames = video["max_frames"].get<std::int64_t>();
  if (video.contains("max_video_tokens")) options.max_video_tokens = video["max_video_tokens"].get<std::int64_t>();
  return options;
}

// The trace's rows of one kind (images or videos), in turn order.
std::vector<float> rows_of_kind(const TurnTrace& trace, bool video, std::int64_t width) {
  std::vector<float> out;
  std::int64_t row = 0;
  for (std::size_t i = 0; i < trace.grids.size(); ++i) {
    const std::int64_t rows = trace.grids[i].patches();
    if (trace.is_video[i] == video) {
      out.insert(out.end(), trace.pixel_values.begin() + row * width, trace.pixel_values.begin() + (row + rows) * width);
    }
    row += rows;
  }
  return out;
}

TEST_F(VideoRuntime, EveryCaseMatchesHfFromTheFileToTheTokens) {
  const ModelConfig& config = model()->data().package.config();
  const std::int64_t width = config.vision.patch_input_size();
  int checked = 0;
  for (const auto& [name, entry] : video_manifest()["cases"].items()) {
    SCOPED_TRACE(name);
    const fs::path dir = video_fixtures() / entry["dir"].get<std::string>();
    auto load = [&](const std::string& array) { return read_npy(dir / entry["arrays"][array]["file"].get<std::string>()); };
    Conversation conversation(model(), case_options(entry));
    TurnTrace trace;
    const Reply reply = conversation.send(case_media(entry, dir), entry["text"], greedy(32), nullptr, &trace);
    EXPECT_EQ(trace.input_ids, load("input_ids").as_int64());
    EXPECT_EQ(trace.frame_indices, load("frame_indices").as_int64());
    EXPECT_EQ(trace.timestamps, load("timestamps").as_double());
    EXPECT_EQ(trace.position_ids, load("position_ids").as_int64());
    EXPECT_EQ(trace.rope_delta, load("rope_deltas").as_int64()[0]);
    std::vector<std::int64_t> video_grid;
    for (std::size_t i = 0; i < trace.grids.size(); ++i) {
      if (trace.is_video[i]) video_grid.insert(video_grid.end(), {trace.grids[i].t, trace.grids[i].h, trace.grids[i].w});
    }
    EXPECT_EQ(video_grid, load("video_grid_thw").as_int64());
    // Bit-exact for every clip, the lossy H.264 one included: its YUV decodes identically
    // everywhere, and the rgb24 conversion reproduces PyAV's (FFmpeg 8) on Debian's FFmpeg 5.1.
    EXPECT_EQ(rows_of_kind(trace, true, width), load("pixel_values_videos").as_float());
    if (entry["arrays"].contains("pixel_values")) {
      EXPECT_EQ(rows_of_kind(trace, false, width), load("pixel_values").as_float());
    }
    // Features: the video rows of the wide visual output against HF's get_video_features.
    const SplitVisualFeatures split = split_visual_features(trace.features, config.text.hidden_size);
    const std::int64_t H = config.text.hidden_size;
    std::vector<float> merged, deepstack;
    std::int64_t token = 0;
    std::vector<std::pair<std::int64_t, std::int64_t>> video_rows;
    for (std::size_t i = 0; i < trace.grids.size(); ++i) {
      if (trace.is_video[i]) video_rows.emplace_back(token, trace.grids[i].tokens());
      token += trace.grids[i].tokens();
    }
    for (const auto& [first, count] : video_rows) {
      merged.insert(merged.end(), split.merged.begin() + first * H, split.merged.begin() + (first + count) * H);
    }
    for (std::int64_t level = 0; level < split.levels; ++level) {
      for (const auto& [first, count] : video_rows) {
        const auto begin = split.deepstack.begin() + (level * trace.features.tokens + first) * H;
        deepstack.insert(deepstack.end(), begin, begin + count * H);
      }
    }
    const test::Difference features = test::compare(merged, load("video_features").as_float());
    const test::Difference levels = test::compare(deepstack, load("video_deepstack_features").as_float());
    const test::Difference logits = test::compare(trace.prefill_logits, load("prefill_logits").as_float());
    std::printf("[ parity   ] %s: video features %.2e, DeepStack %.2e, prefill logits %.2e (max relative)\n", name.c_str(),
                features.relative(), levels.relative(), logits.relative());
    EXPECT_LT(features.relative(), 1e-4);
    EXPECT_LT(levels.relative(), 1e-4);
    EXPECT_LT(logits.relative(), 1e-4);
    EXPECT_EQ(reply.tokens, load("generated_ids").as_int64());
    EXPECT_GE(reply.tokens.size(), 24u);
    EXPECT_EQ(reply.text, entry["generated_text"].get<std::string>());
    EXPECT_GT(reply.timings.video_tokens, 0);
    EXPECT_EQ(reply.timings.video_frames, static_cast<std::int64_t>(trace.frame_indices.size()));
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(video_manifest()["cases"].size()));
  EXPECT_GE(checked, 5);
}

// HF's chat: a video in turn 1, text in turn 2, an image in turn 3; later turns reuse the cache
// (the video is never decoded or encoded again).
TEST_F(VideoRuntime, ChatAfterAVideoMatchesHfTurnByTurn) {
  const json& chat = video_manifest()["chat"];
  const fs::path dir = video_fixtures() / chat["dir"].get<std::string>();
  Conversation conversation(model());
  int checked = 0;
  for (const json& turn : chat["turns"]) {
    std::vector<Media> media;
    for (const json& item : turn["media"]) {
      if (item["kind"] == "video") media.emplace_back(VideoClip::from_file(dir / item["file"].get<std::string>()));
      if (item["kind"] == "image") media.emplace_back(decode_image_file(dir / item["file"].get<std::string>()));
    }
    TurnTrace trace;
    const Reply reply = conversation.send(media, turn["user"], greedy(chat["max_new_tokens"].get<std::int64_t>()), nullptr, &trace);
    EXPECT_EQ(trace.prompt_ids, read_npy(dir / turn["input_ids"].get<std::string>()).as_int64());
    EXPECT_EQ(reply.tokens, read_npy(dir / turn["output_ids"].get<std::string>()).as_int64());
    EXPECT_EQ(reply.text, turn["reply"].get<std::string>());
    if (checked > 0) {
      EXPECT_LT(trace.input_ids.size(), trace.prompt_ids.size()) << "earlier turns recomputed";
      EXPECT_EQ(reply.timings.video_frames, 0) << "the video was decoded again";
    }
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

// A long prompt is prefilled in chunks through the cache; chunks of 7 tokens split the video's
// frame pairs, its timestamps and the image across calls and still give HF's tokens.
TEST_F(VideoRuntime, ChunkedPrefillGivesHfsTokens) {
  int checked = 0;
  for (const char* name : {"video_then_image", "fps_override"}) {
    const json& entry = video_manifest()["cases"][name];
    const fs::path dir = video_fixtures() / entry["dir"].get<std::string>();
    ConversationOptions options = case_options(entry);
    options.prefill_chunk_tokens = 7;
    Conversation conversation(model(), options);
    TurnTrace trace;
    const Reply reply = conversation.send(case_media(entry, dir), entry["text"], greedy(32), nullptr, &trace);
    ASSERT_GT(trace.input_ids.size(), 7u * 5);
    EXPECT_LT(test::compare(trace.prefill_logits, read_npy(dir / "prefill_logits.npy").as_float()).relative(), 1e-4) << name;
    EXPECT_EQ(reply.tokens, read_npy(dir / "generated_ids.npy").as_int64()) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 2);
  ConversationOptions bad;
  bad.prefill_chunk_tokens = -1;
  EXPECT_THROW(Conversation(model(), bad), InvalidInput);
}

TEST_F(VideoRuntime, ABadClipFailsTheTurnAndLeavesTheConversationAsItWas) {
  Conversation conversation(model());
  const fs::path bad = dir().path() / "not_a_video.mp4";
  write_text_file(bad, "this is text, not a video");
  try {
    conversation.send({VideoClip::from_file(bad)}, "What happens?", greedy(4));
    FAIL() << "a text file was accepted as a video";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find(bad.string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(conversation.turns(), 0);
  EXPECT_EQ(conversation.cached_tokens(), 0);
  // A missing file or a folder is refused when the clip is made, before any turn.
  EXPECT_THROW(VideoClip::from_file(dir().path() / "missing.mp4"), InvalidInput);
  EXPECT_THROW(VideoClip::from_file(dir().path()), InvalidInput);
  // A clip whose sampled frames cannot fit a tiny budget is refused before it is decoded.
  ConversationOptions tight;
  tight.max_video_tokens = 1;
  Conversation small(model(), tight);
  const json& entry = video_manifest()["cases"]["video_only"];
  const fs::path dir = video_fixtures() / entry["dir"].get<std::string>();
  try {
    small.send(case_media(entry, dir), "What happens?", greedy(4));
    FAIL() << "a clip over its budget was accepted";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("clip budget of 1 tokens"), std::string::npos) << e.what();
  }
  // And the same conversation then answers a good request.
  EXPECT_EQ(conversation.send(case_media(entry, dir), entry["text"], greedy(32)).tokens,
            read_npy(dir / "generated_ids.npy").as_int64());
}

}  // namespace
}  // namespace q3vl
