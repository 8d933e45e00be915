// The whole runtime against Hugging Face: from PNG files and text, through the chat template,
// tokenizer, preprocessing, vision, embedding and decoder, to HF's greedy tokens; and a chat
// turn by turn, where later turns reuse the KV cache.
#include <gtest/gtest.h>

#include <cstdlib>

#include "export/package_writer.h"
#include "q3vl/error.h"
#include "engine/conversation.h"
#include "support/golden.h"
#include "support/test_support.h"
#include "util/npy.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

class Runtime : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    PackageOptions options;
    options.tokenizer_dir = Q3VL_TOKENIZER_DIR;
    build_package(test::golden_dir() / "models" / "full", package(), options);
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path package() { return dir_->path() / "pkg"; }
  static test::TempDir* dir_;
};
test::TempDir* Runtime::dir_ = nullptr;

ReplyOptions greedy(std::int64_t max_new_tokens) {
  ReplyOptions o;
  o.sampling.greedy = true;
  o.max_new_tokens = max_new_tokens;
  return o;
}

// Single-turn cases: every integer input equal to HF's, and the 32 greedy tokens.
TEST_F(Runtime, SingleTurnCasesMatchHfFromFilesAndText) {
  Engine engine(package());
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (c.model() != "full" || c.entry["messages"].size() > 2) continue;
    SCOPED_TRACE(c.name);
    ConversationOptions options;
    options.preprocess = read_preprocess_options(engine.package().preprocessor_config());
    std::string user_text;
    for (const auto& m : c.entry["messages"]) {
      if (m["role"] == "system") options.system_prompt = m["content"].get<std::string>();
      if (m["role"] != "user") continue;
      if (m["content"].is_string()) {
        user_text = m["content"].get<std::string>();
        continue;
      }
      for (const auto& item : m["content"]) {
        if (item["type"] == "text") user_text = item["text"].get<std::string>();
      }
    }
    std::vector<RgbImage> images;
    for (const auto& image : c.entry["images"]) {
      images.push_back(decode_image_file(test::golden_dir() / c.entry["dir"].get<std::string>() / image["file"].get<std::string>()));
    }
    Conversation conversation(engine, options);
    TurnTrace trace;
    const Reply reply = conversation.send(images, user_text, greedy(32), nullptr, &trace);
    EXPECT_EQ(trace.input_ids, c.load("input_ids").as_int64());
    EXPECT_EQ(trace.position_ids, c.load("position_ids").as_int64());
    EXPECT_EQ(trace.rope_delta, c.load("rope_deltas").as_int64()[0]);
    if (c.has("pixel_values")) {
      EXPECT_EQ(trace.pixel_values, c.load("pixel_values").as_float());  // bit-exact preprocessing
      EXPECT_TRUE(trace.grids == c.grids());
    }
    EXPECT_EQ(reply.tokens, c.load("greedy_tokens").as_int64());
  }
}

// HF's chat, generated turn by turn: same prompts (re-rendered with our replies) and replies; the
// later turns feed only the new tokens.
TEST_F(Runtime, MultiTurnChatMatchesHfAndReusesTheCache) {
  Engine engine(package());
  const auto& chat = test::golden_manifest()["chats"]["full_chat"];
  const fs::path dir = test::golden_dir() / chat["dir"].get<std::string>();
  ConversationOptions options;
  options.preprocess = read_preprocess_options(engine.package().preprocessor_config());
  Conversation conversation(engine, options);
  for (const auto& turn : chat["turns"]) {
    std::vector<RgbImage> images;
    for (const auto& image : turn["images"]) images.push_back(decode_image_file(dir / image.get<std::string>()));
    TurnTrace trace;
    const Reply reply = conversation.send(images, turn["user"].get<std::string>(), greedy(chat["max_new_tokens"].get<std::int64_t>()),
                                          nullptr, &trace);
    EXPECT_EQ(trace.prompt_ids, read_npy(dir / turn["input_ids"].get<std::string>()).as_int64());
    EXPECT_EQ(reply.tokens, read_npy(dir / turn["output_ids"].get<std::string>()).as_int64());
    EXPECT_EQ(reply.text, turn["reply"].get<std::string>());
    if (&turn != &chat["turns"][0]) {
      EXPECT_LT(trace.input_ids.size(), trace.prompt_ids.size()) << "earlier turns recomputed";
    }
  }
}

// A float16 package (vision, embedding table, decoder and KV cache in float16) end to end.
TEST_F(Runtime, Fp16PackageGivesHfTokens) {
  PackageOptions options;
  options.tokenizer_dir = Q3VL_TOKENIZER_DIR;
  options.show_progress = false;
  options.vision.fp16 = true;
  options.text.fp16 = true;
  options.embedding_fp16 = true;
  const fs::path fp16_package = dir_->path() / "pkg-fp16";
  build_package(test::golden_dir() / "models" / "full", fp16_package, options);
  Engine engine(fp16_package);
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (c.name != "full_image_system") continue;
    ConversationOptions conversation_options;
    conversation_options.system_prompt = "You are a helpful assistant.";
    conversation_options.preprocess = read_preprocess_options(engine.package().preprocessor_config());
    Conversation conversation(engine, conversation_options);
    const fs::path image = test::golden_dir() / c.entry["dir"].get<std::string>() / "image0.png";
    const Reply reply = conversation.send({decode_image_file(image)}, "Describe this image.", greedy(32), nullptr);
    EXPECT_EQ(reply.tokens, c.load("greedy_tokens").as_int64());
  }
}

TEST_F(Runtime, BadRequestsLeaveTheConversationUsable) {
  Engine engine(package());
  ConversationOptions options;
  options.context_length = 40;
  options.preprocess = read_preprocess_options(engine.package().preprocessor_config());
  Conversation conversation(engine, options);
  ReplyOptions bad = greedy(4);
  bad.sampling.greedy = false;
  bad.sampling.temperature = -1.0f;
  EXPECT_THROW(conversation.send({}, "hi", bad, nullptr), InvalidInput);
  EXPECT_THROW(conversation.send({}, std::string(400, 'x') + " long prompt", greedy(4), nullptr), InvalidInput);  // context
  EXPECT_EQ(conversation.messages().size(), 0u);
  const Reply reply = conversation.send({}, "hi", greedy(4), nullptr);
  EXPECT_EQ(reply.tokens.size(), 4u);
}

}  // namespace
}  // namespace q3vl
