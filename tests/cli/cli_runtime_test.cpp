// The q3vl binary end to end: `q3vl run --dump` writes HF-comparable tensors and HF's tokens;
// `q3vl chat` driven by scripted input gives HF's replies turn by turn.
#include <gtest/gtest.h>


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
                " --out " + test::shell_quote(package().string()) + " --tokenizer-dir " + test::shell_quote(Q3VL_TOKENIZER_DIR) + " 2>&1",
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
}

}  // namespace
}  // namespace q3vl
