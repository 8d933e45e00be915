// The whole runtime against Hugging Face: from PNG files and text, through the chat template,
// tokenizer, preprocessing, vision, embedding and decoder, to HF's greedy tokens; and a chat
// turn by turn, where later turns reuse the KV cache; and many conversations on one shared model,
// concurrently, each giving exactly HF's tokens.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "export/package_writer.h"
#include "kernels/int4_matrices.h"
#include "package/format.h"
#include "package/kernel_graphs.h"
#include "util/files.h"
#include "q3vl/error.h"
#include "engine/turn_trace.h"
#include "q3vl/conversation.h"
#include "support/full_model.h"
#include "support/golden.h"
#include "support/test_support.h"
#include "util/npy.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

using json = nlohmann::json;

class Runtime : public test::FullModelTest {};
using test::greedy;

// A single-turn golden case as a request: the system prompt, the user's images and text.
struct SingleTurn {
  std::string name;
  ConversationOptions options;
  std::vector<Media> images;
  std::string user_text;
  std::vector<std::int64_t> hf_tokens;
};

std::vector<SingleTurn> single_turn_cases() {
  std::vector<SingleTurn> cases;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (c.model() != "full" || c.entry["messages"].size() > 2) continue;
    SingleTurn t;
    t.name = c.name;
    for (const auto& m : c.entry["messages"]) {
      if (m["role"] == "system") t.options.system_prompt = m["content"].get<std::string>();
      if (m["role"] != "user") continue;
      if (m["content"].is_string()) {
        t.user_text = m["content"].get<std::string>();
        continue;
      }
      for (const auto& item : m["content"]) {
        if (item["type"] == "text") t.user_text = item["text"].get<std::string>();
      }
    }
    for (const auto& image : c.entry["images"]) {
      t.images.push_back(decode_image_file(test::golden_dir() / c.entry["dir"].get<std::string>() / image["file"].get<std::string>()));
    }
    t.hf_tokens = c.load("greedy_tokens").as_int64();
    cases.push_back(std::move(t));
  }
  return cases;
}

// Single-turn cases: every integer input equal to HF's, and the 32 greedy tokens.
TEST_F(Runtime, SingleTurnCasesMatchHfFromFilesAndText) {
  int checked = 0;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (c.model() != "full" || c.entry["messages"].size() > 2) continue;
    SCOPED_TRACE(c.name);
    ++checked;
    ConversationOptions options;
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
    std::vector<Media> images;
    for (const auto& image : c.entry["images"]) {
      images.push_back(decode_image_file(test::golden_dir() / c.entry["dir"].get<std::string>() / image["file"].get<std::string>()));
    }
    Conversation conversation(model(), options);
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
  EXPECT_EQ(checked, static_cast<int>(single_turn_cases().size()));
  EXPECT_GE(checked, 2) << "golden single-turn cases of the full model went missing";
}

// HF's chat, generated turn by turn: same prompts (re-rendered with our replies) and replies; the
// later turns feed only the new tokens.
TEST_F(Runtime, MultiTurnChatMatchesHfAndReusesTheCache) {
  const auto& chat = test::golden_manifest()["chats"]["full_chat"];
  const fs::path dir = test::golden_dir() / chat["dir"].get<std::string>();
  Conversation conversation(model());
  ASSERT_GE(chat["turns"].size(), 2u);
  for (const auto& turn : chat["turns"]) {
    std::vector<Media> images;
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
  options.video_preprocessor_config = test::reference_video_preprocessor_config();
  options.show_progress = false;
  options.vision.fp16 = true;
  options.text.fp16 = true;
  options.embedding_fp16 = true;
  const fs::path fp16_package = dir().path() / "pkg-fp16";
  build_package(test::golden_dir() / "models" / "full", fp16_package, options);
  const std::shared_ptr<const Model> fp16_model = Model::load(fp16_package);
  int checked = 0;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (c.name != "full_image_system") continue;
    ++checked;
    ConversationOptions conversation_options;
    conversation_options.system_prompt = "You are a helpful assistant.";
    Conversation conversation(fp16_model, conversation_options);
    const fs::path image = test::golden_dir() / c.entry["dir"].get<std::string>() / "image0.png";
    const Reply reply = conversation.send({decode_image_file(image)}, "Describe this image.", greedy(32), nullptr);
    EXPECT_EQ(reply.tokens, c.load("greedy_tokens").as_int64());
  }
  EXPECT_EQ(checked, 1);
}

// An int8 vision encoder: the runtime loads vision.kernels.onnx where the CPU has AVX-512 VNNI
// (vision.onnx elsewhere, said so), not when asked not to, and not under a stamp naming another
// vision.onnx or a garbled one (said so); each way an image turn replies.
TEST_F(Runtime, Int8VisionLoadsTheKernelGraphOnlyUnderAMatchingStamp) {
  PackageOptions options;
  options.tokenizer_dir = Q3VL_TOKENIZER_DIR;
  options.video_preprocessor_config = test::reference_video_preprocessor_config();
  options.show_progress = false;
  options.vision.linear.format = WeightFormat::Int8;
  options.vision.linear.block_size = 16;  // the tiny model's widths
  const fs::path int8_package = dir().path() / "pkg-int8-vision";
  build_package(test::golden_dir() / "models" / "full", int8_package, options);
  std::vector<std::variant<RgbImage, VideoClip>> images;
  for (const SingleTurn& c : single_turn_cases()) {
    if (!c.images.empty() && images.empty()) images = c.images;
  }
  ASSERT_FALSE(images.empty());
  const auto replies = [&](const std::shared_ptr<const Model>& model) {
    Conversation conversation(model);
    return !conversation.send(images, "Describe this image.", greedy(3), nullptr).tokens.empty();
  };
  const std::shared_ptr<const Model> model = Model::load(int8_package);
  EXPECT_EQ(model->vision_model_note(), kernels::int8_kernels_fast()
                                            ? "vision encoder: vision.kernels.onnx (q3vl's int8 kernels)"
                                            : "vision encoder: vision.onnx (this CPU lacks AVX2, which vision.kernels.onnx's kernels need to be faster)");
  EXPECT_TRUE(replies(model));
  ModelOptions no_kernels;
  no_kernels.q3vl_kernels = false;
  EXPECT_EQ(Model::load(int8_package, no_kernels)->vision_model_note(), "");
  const fs::path stamp_path = int8_package / kKernelVisionStamp;
  json stamp = json::parse(read_text_file(stamp_path));
  stamp["vision_onnx_sha256"] = std::string(64, '0');
  write_json_file(stamp_path, stamp);
  const std::shared_ptr<const Model> stale = Model::load(int8_package);
  EXPECT_EQ(stale->vision_model_note(), "vision.kernels.onnx ignored: vision.onnx changed since it was written (build the package again)");
  EXPECT_TRUE(replies(stale));
  write_text_file(stamp_path, "{not json");
  const std::shared_ptr<const Model> garbled = Model::load(int8_package);
  EXPECT_EQ(garbled->vision_model_note().rfind("vision.kernels.onnx ignored: ", 0), 0u) << garbled->vision_model_note();
  EXPECT_TRUE(replies(garbled));
  // A matching stamp beside an empty kernel graph (say, a copy that stopped): the image turn fails
  // with an error naming the file, no crash. (Only on CPUs that would load it.)
  if (kernels::int8_kernels_fast()) {
    write_json_file(stamp_path, kernel_vision_stamp(int8_package));
    fs::resize_file(int8_package / package::kKernelVisionModel, 0);
    Conversation conversation(Model::load(int8_package));
    try {
      conversation.send(images, "Describe this image.", greedy(3), nullptr);
      ADD_FAILURE() << "an empty vision.kernels.onnx encoded an image";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(package::kKernelVisionModel), std::string::npos) << e.what();
    }
  }
}

// The vision encoder loaded on a second thread beside the text models (ModelOptions::
// preload_vision, what `q3vl run --image` asks for) is the one every image then uses: HF's tokens,
// three sessions in all however the preload's timing falls.
TEST_F(Runtime, PreloadedVisionEncoderGivesHfTokens) {
  ModelOptions options;
  options.preload_vision = true;
  const std::shared_ptr<const Model> preloaded = Model::load(package(), options);
  int checked = 0;
  for (const SingleTurn& c : single_turn_cases()) {
    if (c.images.empty()) continue;
    SCOPED_TRACE(c.name);
    Conversation conversation(preloaded, c.options);
    EXPECT_EQ(conversation.send(c.images, c.user_text, greedy(32)).tokens, c.hf_tokens);
    ++checked;
  }
  EXPECT_EQ(checked, 1);  // the single-turn fixture cases with an image
  EXPECT_EQ(preloaded->sessions_loaded(), 3);
}

// What `q3vl run` asks for: the vision encoder without ONNX Runtime's weight repacking, unloaded
// after each use. Every image still gives HF's tokens, and the next image loads the encoder again
// (one more session).
TEST_F(Runtime, VisionEncoderReleasedAfterUseGivesHfTokensAndLoadsAgain) {
  ModelOptions options;
  options.preload_vision = true;
  options.prepack_vision = false;
  options.release_vision_after_use = true;
  const std::shared_ptr<const Model> model = Model::load(package(), options);
  int checked = 0;
  for (int round = 0; round < 2; ++round) {
    for (const SingleTurn& c : single_turn_cases()) {
      if (c.images.empty()) continue;
      SCOPED_TRACE(c.name + ", round " + std::to_string(round));
      Conversation conversation(model, c.options);
      EXPECT_EQ(conversation.send(c.images, c.user_text, greedy(32)).tokens, c.hf_tokens);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2);
  EXPECT_EQ(model->sessions_loaded(), 4);  // embedding, decoder, and the vision encoder twice
}

TEST_F(Runtime, BadRequestsLeaveTheConversationUsable) {
  ConversationOptions options;
  options.context_length = 40;
  Conversation conversation(model(), options);
  ReplyOptions bad = greedy(4);
  bad.sampling->greedy = false;
  bad.sampling->temperature = -1.0f;
  EXPECT_THROW(conversation.send({}, "hi", bad, nullptr), InvalidInput);
  EXPECT_THROW(conversation.send({}, std::string(400, 'x') + " long prompt", greedy(4), nullptr), InvalidInput);  // context
  EXPECT_EQ(conversation.turns(), 0);
  const Reply reply = conversation.send({}, "hi", greedy(4), nullptr);
  EXPECT_EQ(reply.tokens.size(), 4u);
  EXPECT_EQ(conversation.turns(), 1);
  conversation.reset();
  EXPECT_EQ(conversation.turns(), 0);
  EXPECT_EQ(conversation.cached_tokens(), 0);
}

// Conversations are light: they share the model's sessions; only the first image loads the
// vision encoder, once.
TEST_F(Runtime, ConversationsShareOneLoadedModel) {
  const std::shared_ptr<const Model> fresh = Model::load(package());
  EXPECT_EQ(fresh->sessions_loaded(), 2);  // embedding and decoder
  std::vector<Conversation> conversations;
  for (int i = 0; i < 8; ++i) conversations.emplace_back(fresh);
  EXPECT_EQ(fresh->sessions_loaded(), 2);
  for (Conversation& c : conversations) c.send({}, "hi", greedy(2));
  EXPECT_EQ(fresh->sessions_loaded(), 2);
  const std::vector<SingleTurn> cases = single_turn_cases();
  const auto with_image = std::find_if(cases.begin(), cases.end(), [](const SingleTurn& t) { return !t.images.empty(); });
  ASSERT_NE(with_image, cases.end());
  conversations[0].send(with_image->images, with_image->user_text, greedy(2));
  conversations[1].send(with_image->images, with_image->user_text, greedy(2));
  EXPECT_EQ(fresh->sessions_loaded(), 3);  // + vision, once
}

// N threads, each with its own conversations on one model (whose vision encoder all of them ask
// for first at the same time), give exactly the tokens each case gives alone: HF's.
TEST_F(Runtime, ConcurrentConversationsOnOneModelGiveHfTokens) {
  const std::vector<SingleTurn> cases = single_turn_cases();
  ASSERT_GE(cases.size(), 2u);
  const std::shared_ptr<const Model> shared = Model::load(package());
  constexpr int kThreads = 4, kRounds = 2;
  std::atomic<int> ready{0};
  std::vector<std::vector<std::vector<std::int64_t>>> tokens(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        ++ready;
        while (ready.load() < kThreads) std::this_thread::yield();  // start together
        for (int round = 0; round < kRounds; ++round) {
          const SingleTurn& c = cases[static_cast<std::size_t>(t + round) % cases.size()];
          Conversation conversation(shared, c.options);
          tokens[t].push_back(conversation.send(c.images, c.user_text, greedy(32)).tokens);
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  int compared = 0;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
    ASSERT_EQ(tokens[t].size(), static_cast<std::size_t>(kRounds));
    for (int round = 0; round < kRounds; ++round) {
      const SingleTurn& c = cases[static_cast<std::size_t>(t + round) % cases.size()];
      EXPECT_EQ(tokens[t][round], c.hf_tokens) << c.name << " on thread " << t;
      ++compared;
    }
  }
  EXPECT_EQ(compared, kThreads * kRounds);
  EXPECT_LE(shared->sessions_loaded(), 3);
}

}  // namespace
}  // namespace q3vl
