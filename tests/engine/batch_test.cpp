// Continuous batching (issue 14): one decoder step for several sequences of a shared KV cache gives
// each the logits it gets alone, rows that sit a step out keep what they hold, and conversations
// on one BatchEngine, running at once, give HF's greedy tokens; the KV budget and the rows are
// limits with clear errors.
#include <gtest/gtest.h>

#include <barrier>
#include <thread>

#include "engine/batch_engine.h"
#include "engine/model_data.h"
#include "export/package_writer.h"
#include "q3vl/error.h"
#include "support/full_model.h"
#include "support/golden.h"

namespace q3vl {
namespace {

class Batch : public test::FullModelTest {};
using test::case_messages;
using test::greedy;

// Text positions (t = h = w) for `count` tokens from `first`, axis-major.
std::vector<std::int64_t> text_positions(std::int64_t first, std::int64_t count) {
  std::vector<std::int64_t> positions;
  for (int axis = 0; axis < 3; ++axis) {
    for (std::int64_t p = first; p < first + count; ++p) positions.push_back(p);
  }
  return positions;
}

// A sequence fed the same tokens twice: in the shared pool (batched) and in a cache of its own.
struct TwinSequence {
  KvCache shared, alone;
  std::int64_t prompt_tokens = 0;
};

// Four sequences in one pool: rows 0, 2 and 3 decode six batched steps, each against a twin run
// alone, and row 1 sits every step out and then gives its twin's logits.
void expect_batched_steps_match_sequences_alone(const ModelData& data) {
  const std::int64_t vocab = data.package.config().text.vocab_size;
  auto pool = std::make_shared<KvPool>(data.decoder.kv_layout(), 4, 512);
  // Rows 0, 2 and 3 decode; row 1 holds a prompt and sits every step out.
  std::vector<TwinSequence> sequences;
  const std::vector<std::string> prompts = {"A short prompt", "Row one waits while the others decode, and keeps its cache",
                                            "Another prompt of some other length, longer than the first",
                                            "The fourth"};
  for (const std::string& text : prompts) {
    const std::vector<std::int64_t> prompt = data.tokenizer.encode(text);
    const auto n = static_cast<std::int64_t>(prompt.size());
    TwinSequence s{KvCache(pool, 512), data.decoder.new_cache(512), n};
    const std::vector<float> embeds = data.embedding.embed(prompt, nullptr);
    data.decoder.forward(s.shared, embeds, text_positions(0, n));
    data.decoder.forward(s.alone, embeds, text_positions(0, n));
    sequences.push_back(std::move(s));
  }
  ASSERT_EQ(sequences[1].shared.row(), 1);
  const std::vector<std::size_t> decoding = {0, 2, 3};
  double worst = 0;
  int compared = 0;
  for (std::int64_t step = 0; step < 6; ++step) {
    std::vector<KvCache*> caches;
    std::vector<float> embeddings;
    std::vector<std::int64_t> positions(3 * decoding.size());
    std::vector<std::vector<float>> alone;  // each twin's logits for the same token, run alone
    for (std::size_t i = 0; i < decoding.size(); ++i) {
      TwinSequence& s = sequences[decoding[i]];
      const std::int64_t token = 100 + 37 * static_cast<std::int64_t>(decoding[i]) + step;
      const std::vector<float> embedding = data.embedding.embed(std::vector<std::int64_t>{token}, nullptr);
      caches.push_back(&s.shared);
      embeddings.insert(embeddings.end(), embedding.begin(), embedding.end());
      for (std::size_t axis = 0; axis < 3; ++axis) positions[axis * decoding.size() + i] = s.shared.cached_tokens();
      alone.push_back(data.decoder.forward(s.alone, embedding, text_positions(s.alone.cached_tokens(), 1)).logits);
    }
    const std::vector<float> batched = data.decoder.forward_batch(caches, embeddings, positions);
    ASSERT_EQ(batched.size(), decoding.size() * static_cast<std::size_t>(vocab));
    for (std::size_t i = 0; i < decoding.size(); ++i) {
      EXPECT_EQ(sequences[decoding[i]].shared.cached_tokens(), sequences[decoding[i]].alone.cached_tokens());
      const std::vector<float> mine(batched.begin() + static_cast<std::ptrdiff_t>(i) * vocab,
                                    batched.begin() + static_cast<std::ptrdiff_t>(i + 1) * vocab);
      worst = std::max(worst, test::compare(mine, alone[i]).relative());
      ++compared;
    }
  }
  EXPECT_EQ(compared, 18);
  EXPECT_LT(worst, 1e-5);
  // Row 1 sat out six steps: its next token gives what its twin gives.
  TwinSequence& waiting = sequences[1];
  EXPECT_EQ(waiting.shared.cached_tokens(), waiting.prompt_tokens);
  const std::vector<float> embedding = data.embedding.embed(std::vector<std::int64_t>{42}, nullptr);
  const auto at = waiting.shared.cached_tokens();
  const std::vector<float> shared = data.decoder.forward(waiting.shared, embedding, text_positions(at, 1)).logits;
  const std::vector<float> alone = data.decoder.forward(waiting.alone, embedding, text_positions(at, 1)).logits;
  EXPECT_LT(test::compare(shared, alone).relative(), 1e-5);
}

TEST_F(Batch, BatchedStepGivesEachSequenceItsOwnLogits) { expect_batched_steps_match_sequences_alone(model()->data()); }

// The same over a float16 KV cache: an int4 package's decoder (text.kernels.onnx), whose
// attention reads and appends half floats, batched rows and the row that waits included.
TEST(BatchHalfCache, BatchedStepsOverAFloat16CacheGiveEachSequenceItsOwnLogits) {
  test::TempDir dir;
  PackageOptions options;
  options.tokenizer_dir = Q3VL_TOKENIZER_DIR;
  options.video_preprocessor_config = test::reference_video_preprocessor_config();
  options.show_progress = false;
  options.parts = {PackagePart::Embedding, PackagePart::Text};
  LinearOptions int4;
  int4.format = WeightFormat::Int4;
  int4.block_size = 16;
  options.text.linear = int4;
  options.text.lm_head = int4;
  build_package(test::golden_dir() / "models" / "full", dir.path() / "pkg", options);
  const std::shared_ptr<const Model> model = Model::load(dir.path() / "pkg");
  ASSERT_EQ(model->data().decoder.kv_layout().element_bytes, 2u);  // the kernel graph's float16 cache
  expect_batched_steps_match_sequences_alone(model->data());
}

// The golden `full` cases (text, image + system, two turns) at once on one engine, twice (the
// second time from their cached prompts): each gives HF's greedy tokens, and steps were batched.
TEST_F(Batch, ConversationsRunningTogetherGiveHfTokens) {
  std::vector<test::GoldenCase> cases;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (c.model() == "full") cases.push_back(c);
  }
  ASSERT_EQ(cases.size(), 3u);
  BatchOptions batch;
  batch.max_sequences = 3;
  batch.context_length = 2048;
  batch.prefill_chunk_tokens = 16;  // several chunks per prompt, between the others' steps
  const std::shared_ptr<BatchEngine> engine = BatchEngine::create(model(), batch);
  ConversationOptions options;
  options.engine = engine;
  std::vector<Conversation> conversations;
  for (std::size_t i = 0; i < cases.size(); ++i) conversations.emplace_back(model(), options);
  int checked = 0;
  for (int round = 0; round < 2; ++round) {
    std::barrier ready(static_cast<std::ptrdiff_t>(cases.size()));
    std::vector<Reply> replies(cases.size());
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < cases.size(); ++i) {
      threads.emplace_back([&, i] {
        ReplyOptions reply_options = greedy(32);
        reply_options.on_prompt_ready = [&](std::int64_t, std::int64_t) { ready.arrive_and_wait(); };
        replies[i] = conversations[i].respond(case_messages(cases[i]), reply_options);
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (std::size_t i = 0; i < cases.size(); ++i) {
      SCOPED_TRACE(cases[i].name + " round " + std::to_string(round));
      EXPECT_EQ(replies[i].tokens, cases[i].load("greedy_tokens").as_int64());
      if (round == 1) {
        EXPECT_GT(replies[i].cached_tokens, 0);
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 6);
  const BatchStats stats = engine->stats();
  EXPECT_GE(stats.largest_batch, 2);
  EXPECT_LT(stats.steps, stats.step_tokens);  // fewer steps than tokens: some carried several sequences
  EXPECT_GT(stats.prefill_chunks, 3);
  EXPECT_GE(stats.exclusive_jobs, 1);  // the image case's vision encoder
}

// A new conversation asking what another one was asked copies that one's cache (HF's tokens still);
// the same chat with another image of the same size takes only what precedes the image.
TEST_F(Batch, ANewConversationReusesAnotherOnesPrefix) {
  const test::GoldenCase c = test::golden_case("full_image_system");
  const std::vector<Message> messages = case_messages(c);
  std::vector<Message> other_image = messages;
  for (std::uint8_t& value : std::get<RgbImage>(other_image.back().content.front()).pixels) value = static_cast<std::uint8_t>(255 - value);
  const std::vector<std::int64_t> hf = c.load("greedy_tokens").as_int64();
  const std::vector<std::int64_t> ids = c.load("input_ids").as_int64();
  const auto image_start = std::find(ids.begin(), ids.end(), model()->data().package.config().image_token_id) - ids.begin();

  BatchOptions batch;
  batch.max_sequences = 3;
  batch.context_length = 1024;
  const std::shared_ptr<BatchEngine> engine = BatchEngine::create(model(), batch);
  ConversationOptions options;
  options.engine = engine;
  Conversation first(model(), options), second(model(), options), third(model(), options);
  const Reply original = first.respond(messages, greedy(32));
  EXPECT_EQ(original.tokens, hf);
  EXPECT_EQ(original.cached_tokens, 0);

  const Reply copied = second.respond(messages, greedy(32));
  EXPECT_EQ(copied.tokens, hf);
  EXPECT_EQ(copied.cached_tokens, copied.prompt_tokens - 1);  // all but the last prompt token
  EXPECT_EQ(engine->stats().shared_prefix_tokens, copied.cached_tokens);

  const Reply changed = third.respond(other_image, greedy(32));
  EXPECT_LE(changed.cached_tokens, image_start) << "the other image's tokens came from another cache";
  Conversation alone(model());
  EXPECT_EQ(changed.tokens, alone.respond(other_image, greedy(32)).tokens);
}

TEST_F(Batch, LimitsAreErrorsThatSayWhich) {
  BatchOptions batch;
  batch.max_sequences = 2;
  batch.context_length = 4096;
  const std::uint64_t per_token = BatchEngine::create(model(), batch)->bytes_per_token();
  // A budget for 100 tokens per sequence (plus each row's spare position).
  batch.kv_cache_bytes = 2 * 101 * per_token;
  const std::shared_ptr<BatchEngine> engine = BatchEngine::create(model(), batch);
  EXPECT_EQ(engine->tokens_per_sequence(), 100);
  ConversationOptions options;
  options.engine = engine;
  Conversation first(model(), options), second(model(), options);
  EXPECT_EQ(first.context_length(), 100);
  try {
    Conversation third(model(), options);
    ADD_FAILURE() << "a third conversation on two rows";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no free sequence slot"), std::string::npos) << e.what();
  }
  std::string long_text;
  for (int i = 0; i < 60; ++i) long_text += "more words ";
  try {
    first.respond({Message{"user", {long_text}}}, greedy(8));
    ADD_FAILURE() << "a prompt longer than the budget allows";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("context"), std::string::npos) << e.what();
  }
  // Still usable, and a reply that reaches the limit ends with "length".
  const Reply reply = second.respond({Message{"user", {"Hello"}}}, greedy(200));
  // The cache fills up with 100 tokens; the last token is sampled from their logits.
  EXPECT_EQ(reply.prompt_tokens + static_cast<std::int64_t>(reply.tokens.size()), 101);
  EXPECT_EQ(reply.finish_reason, "length");
  EXPECT_LE(engine->stats().kv_cache_bytes, batch.kv_cache_bytes);

  batch.kv_cache_bytes = per_token;  // not one token per sequence
  EXPECT_THROW(BatchEngine::create(model(), batch), InvalidInput);
  batch.kv_cache_bytes = 0;
  batch.max_sequences = 0;
  EXPECT_THROW(BatchEngine::create(model(), batch), InvalidInput);
  ConversationOptions too_long = options;
  too_long.context_length = 101;
  EXPECT_THROW(Conversation(model(), too_long), InvalidInput);
}

}  // namespace
}  // namespace q3vl
