// The q3vl binary end to end: `q3vl run --dump` writes HF-comparable tensors and HF's tokens;
// `q3vl chat` driven by scripted input gives HF's replies turn by turn.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>


#include "support/golden.h"
#include "util/files.h"
#include "support/test_support.h"
#include "util/npy.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    int status = 0;
    test::run_command(std::string(Q3VL_CLI) + " build --model " + test::shell_quote((test::golden_dir() / "models" / "full").string()) +
                " --out " + test::shell_quote(package().string()) + " --tokenizer-dir " + test::shell_quote(Q3VL_TOKENIZER_DIR) + " --video-preprocessor-config " +
                test::shell_quote(test::reference_video_preprocessor_config().string()) + " 2>&1",
            status);
    ASSERT_EQ(status, 0);
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path package() { return dir_->path() / "pkg"; }
  static test::TempDir* dir_;
};
test::TempDir* Cli::dir_ = nullptr;

TEST_F(Cli, RunDumpsHfEqualTensorsAndStreamsTheReply) {
  const test::GoldenCase c = test::golden_case("full_image_system");
  const fs::path image = test::golden_dir() / c.entry["dir"].get<std::string>() / "image0.png";
  const fs::path dump = dir_->path() / "dump";
  int status = 0;
  const std::string out = test::run_command(std::string(Q3VL_CLI) + " run --model " + test::shell_quote(package().string()) + " --image " +
                                      test::shell_quote(image.string()) + " --system 'You are a helpful assistant.' --prompt " +
                                      test::shell_quote("Describe this image.") + " --greedy --max-new-tokens 32 --verbose --dump " +
                                      test::shell_quote(dump.string()) + " 2>" + test::shell_quote((dir_->path() / "stderr").string()),
                                  status);
  ASSERT_EQ(status, 0) << read_text_file(dir_->path() / "stderr");
  EXPECT_EQ(out, c.entry["greedy"]["decoded_text"].get<std::string>() + "\n");
  EXPECT_NE(read_text_file(dir_->path() / "stderr").find("decode 31 tok"), std::string::npos);
  for (const char* name : {"input_ids", "image_grid_thw", "position_ids", "rope_deltas"}) {
    EXPECT_EQ(read_npy(dump / (std::string(name) + ".npy")).as_int64(), c.load(name).as_int64()) << name;
  }
  EXPECT_EQ(read_npy(dump / "pixel_values.npy").as_float(), c.load("pixel_values").as_float());
  EXPECT_EQ(read_npy(dump / "output_ids.npy").as_int64(), c.load("greedy_tokens").as_int64());
  const std::vector<float> logits = read_npy(dump / "logits.npy").as_float();
  const std::vector<float> hf_logits = c.load("prefill_logits").as_float();
  EXPECT_LT(test::compare(logits, hf_logits).relative(), 1e-4);
  EXPECT_LT(test::compare(read_npy(dump / "image_features.npy").as_float(), c.load("image_features").as_float()).relative(), 1e-4);
  EXPECT_LT(test::compare(read_npy(dump / "deepstack_features.npy").as_float(), c.load("deepstack_features").as_float()).relative(), 1e-4);
  EXPECT_EQ(read_npy(dump / "deepstack_features.npy").shape, c.load("deepstack_features").shape);
}

TEST_F(Cli, ScriptedChatGivesHfRepliesTurnByTurn) {
  const auto& chat = test::golden_manifest()["chats"]["full_chat"];
  const fs::path dir = test::golden_dir() / chat["dir"].get<std::string>();
  std::string script;
  std::string expected;
  for (const auto& turn : chat["turns"]) {
    for (const auto& image : turn["images"]) script += "/image " + (dir / image.get<std::string>()).string() + "\n";
    script += turn["user"].get<std::string>() + "\n";
    expected += turn["reply"].get<std::string>() + "\n";
  }
  write_text_file(dir_->path() / "script.txt", script);
  int status = 0;
  const std::string out = test::run_command(std::string(Q3VL_CLI) + " chat --model " + test::shell_quote(package().string()) +
                                      " --greedy --max-new-tokens " + std::to_string(chat["max_new_tokens"].get<int>()) + " < " +
                                      test::shell_quote((dir_->path() / "script.txt").string()) + " 2>/dev/null",
                                  status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, expected);
}

// `q3vl run --video ... --image ...` in command-line order, with HF's tensors in the dump.
TEST_F(Cli, RunWithAVideoThenAnImageDumpsHfEqualTensors) {
  const fs::path fixtures = test::source_dir() / "tests" / "fixtures" / "video";
  const nlohmann::json manifest = nlohmann::json::parse(read_text_file(fixtures / "manifest.json"));
  const nlohmann::json& c = manifest["cases"]["video_then_image"];
  const fs::path dir = fixtures / c["dir"].get<std::string>();
  ASSERT_EQ(c["media"][0]["kind"], "video");
  ASSERT_EQ(c["media"][1]["kind"], "image");
  const fs::path dump = dir_->path() / "video_dump";
  int status = 0;
  const std::string out = test::run_command(
      std::string(Q3VL_CLI) + " run --model " + test::shell_quote(package().string()) + " --video " +
          test::shell_quote((dir / c["media"][0]["file"].get<std::string>()).string()) + " --image " +
          test::shell_quote((dir / c["media"][1]["file"].get<std::string>()).string()) + " --system " +
          test::shell_quote(c["system"].get<std::string>()) + " --prompt " + test::shell_quote(c["text"].get<std::string>()) +
          " --greedy --max-new-tokens 32 --verbose --dump " + test::shell_quote(dump.string()) + " 2>" +
          test::shell_quote((dir_->path() / "stderr").string()),
      status);
  const std::string err = read_text_file(dir_->path() / "stderr");
  ASSERT_EQ(status, 0) << err;
  EXPECT_EQ(out, c["generated_text"].get<std::string>() + "\n");
  const std::string frames = "frames " + std::to_string(read_npy(dir / "frame_indices.npy").element_count()) + " |";
  for (const std::string& field : {std::string("video tokens "), frames, std::string("video decode "), std::string("vision ")}) {
    EXPECT_NE(err.find(field), std::string::npos) << field << " missing from: " << err;
  }
  for (const char* name : {"input_ids", "video_grid_thw", "frame_indices", "image_grid_thw", "position_ids", "rope_deltas"}) {
    EXPECT_EQ(read_npy(dump / (std::string(name) + ".npy")).as_int64(), read_npy(dir / (std::string(name) + ".npy")).as_int64())
        << name;
  }
  EXPECT_EQ(read_npy(dump / "timestamps.npy").as_double(), read_npy(dir / "timestamps.npy").as_double());
  EXPECT_EQ(read_npy(dump / "pixel_values_videos.npy").as_float(), read_npy(dir / "pixel_values_videos.npy").as_float());
  EXPECT_EQ(read_npy(dump / "pixel_values.npy").as_float(), read_npy(dir / "pixel_values.npy").as_float());
  EXPECT_LT(test::compare(read_npy(dump / "video_features.npy").as_float(), read_npy(dir / "video_features.npy").as_float()).relative(),
            1e-4);
  EXPECT_LT(test::compare(read_npy(dump / "video_deepstack_features.npy").as_float(),
                          read_npy(dir / "video_deepstack_features.npy").as_float())
                .relative(),
            1e-4);
  EXPECT_EQ(read_npy(dump / "video_deepstack_features.npy").shape, read_npy(dir / "video_deepstack_features.npy").shape);
  EXPECT_EQ(read_npy(dump / "output_ids.npy").as_int64(), read_npy(dir / "generated_ids.npy").as_int64());
}

// The same clip given as extracted frames (--frames DIR --frames-fps F), and the video options.
TEST_F(Cli, RunWithExtractedFramesAndVideoOptionsGivesHfTokens) {
  const fs::path fixtures = test::source_dir() / "tests" / "fixtures" / "video";
  const nlohmann::json manifest = nlohmann::json::parse(read_text_file(fixtures / "manifest.json"));
  int checked = 0;
  for (const char* name : {"frames_dir", "fps_override", "h264_budget"}) {
    const nlohmann::json& c = manifest["cases"][name];
    const fs::path dir = fixtures / c["dir"].get<std::string>();
    const nlohmann::json& media = c["media"][0];
    std::string args = media["kind"] == "frames" ? " --frames " + test::shell_quote((dir / media["dir"].get<std::string>()).string()) +
                                                       " --frames-fps " + std::to_string(media["fps"].get<double>())
                                                 : " --video " + test::shell_quote((dir / media["file"].get<std::string>()).string());
    const nlohmann::json& options = c["video_options"];
    if (options.contains("fps")) args += " --fps " + std::to_string(options["fps"].get<double>());
    if (options.contains("max_frames")) args += " --max-frames " + std::to_string(options["max_frames"].get<int>());
    if (options.contains("max_video_tokens")) args += " --max-video-tokens " + std::to_string(options["max_video_tokens"].get<int>());
    const fs::path dump = dir_->path() / (std::string(name) + "_dump");
    int status = 0;
    test::run_command(std::string(Q3VL_CLI) + " run --model " + test::shell_quote(package().string()) + args + " --prompt " +
                          test::shell_quote(c["text"].get<std::string>()) + " --greedy --max-new-tokens 32 --dump " +
                          test::shell_quote(dump.string()) + " 2>" + test::shell_quote((dir_->path() / "stderr").string()),
                      status);
    ASSERT_EQ(status, 0) << name << ": " << read_text_file(dir_->path() / "stderr");
    for (const char* array : {"input_ids", "video_grid_thw", "frame_indices", "position_ids"}) {
      EXPECT_EQ(read_npy(dump / (std::string(array) + ".npy")).as_int64(), read_npy(dir / (std::string(array) + ".npy")).as_int64())
          << name << " " << array;
    }
    EXPECT_EQ(read_npy(dump / "pixel_values_videos.npy").as_float(), read_npy(dir / "pixel_values_videos.npy").as_float()) << name;
    EXPECT_EQ(read_npy(dump / "output_ids.npy").as_int64(), read_npy(dir / "generated_ids.npy").as_int64()) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

// `q3vl chat` with /video in the first turn, then text, then /image: HF's replies.
TEST_F(Cli, ScriptedChatWithAVideoGivesHfReplies) {
  const fs::path fixtures = test::source_dir() / "tests" / "fixtures" / "video";
  const nlohmann::json manifest = nlohmann::json::parse(read_text_file(fixtures / "manifest.json"));
  const nlohmann::json& chat = manifest["chat"];
  const fs::path dir = fixtures / chat["dir"].get<std::string>();
  std::string script, expected;
  for (const auto& turn : chat["turns"]) {
    for (const auto& item : turn["media"]) {
      script += '/';
      script += item["kind"].get<std::string>();
      script += ' ';
      script += (dir / item["file"].get<std::string>()).string();
      script += '\n';
    }
    script += turn["user"].get<std::string>() + "\n";
    expected += turn["reply"].get<std::string>() + "\n";
  }
  write_text_file(dir_->path() / "video_script.txt", script);
  int status = 0;
  const std::string out = test::run_command(std::string(Q3VL_CLI) + " chat --model " + test::shell_quote(package().string()) +
                                                " --greedy --max-new-tokens " + std::to_string(chat["max_new_tokens"].get<int>()) +
                                                " < " + test::shell_quote((dir_->path() / "video_script.txt").string()) + " 2>/dev/null",
                                            status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, expected);
}

TEST_F(Cli, BadInputsGiveMessagesNotCrashes) {
  int status = 0;
  const fs::path bad = dir_->path() / "bad.png";
  write_text_file(bad, "\x89PNG\r\n\x1a\n truncated");
  const std::string err = dir_->path() / "err.txt";
  test::run_command(std::string(Q3VL_CLI) + " run --model " + test::shell_quote(package().string()) + " --image " + test::shell_quote(bad.string()) +
              " --prompt hi 2>" + test::shell_quote(err),
          status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(read_text_file(err).find("bad.png"), std::string::npos) << read_text_file(err);
  test::run_command(std::string(Q3VL_CLI) + " run --model /nonexistent --prompt hi 2>" + test::shell_quote(err), status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(read_text_file(err).find("not a q3vl package"), std::string::npos) << read_text_file(err);
  test::run_command(std::string(Q3VL_CLI) + " run --model " + test::shell_quote(package().string()) + " --prompt hi --temperature 0 2>" + test::shell_quote(err), status);
  EXPECT_EQ(WEXITSTATUS(status), 2);  // an out-of-range option value is a bad command line
  EXPECT_NE(read_text_file(err).find("temperature"), std::string::npos) << read_text_file(err);
  // Videos: a missing file, a text file, a folder without frames, and option mistakes.
  const std::string run = std::string(Q3VL_CLI) + " run --model " + test::shell_quote(package().string()) + " --prompt hi";
  const fs::path text_clip = dir_->path() / "clip.mp4";
  write_text_file(text_clip, "not a video at all");
  fs::create_directories(dir_->path() / "no_frames");
  struct BadVideo {
    std::string args;
    int exit_code;
    std::string message;
  };
  const std::vector<BadVideo> cases = {
      {" --video " + (dir_->path() / "missing.mp4").string(), 1, "missing.mp4: no such file"},
      {" --video " + text_clip.string(), 1, "clip.mp4"},
      {" --frames " + (dir_->path() / "no_frames").string() + " --frames-fps 5", 1, "no image files"},
      {" --frames " + (dir_->path() / "no_frames").string(), 2, "frames-fps"},
      {" --frames-fps 5", 2, "--frames"},
      {" --fps 0 --video " + text_clip.string(), 2, "--fps"},
      {" --max-frames 0 --video " + text_clip.string(), 2, "--max-frames"},
      {" --min-video-tokens 50 --max-video-tokens 10", 2, "--min-video-tokens"},
  };
  int checked = 0;
  for (const BadVideo& c : cases) {
    test::run_command(run + c.args + " 2>" + test::shell_quote(err), status);
    EXPECT_EQ(WEXITSTATUS(status), c.exit_code) << c.args << ": " << read_text_file(err);
    EXPECT_NE(read_text_file(err).find(c.message), std::string::npos) << c.args << ": " << read_text_file(err);
    ++checked;
  }
  EXPECT_EQ(checked, 8);
}

}  // namespace
}  // namespace q3vl
