// Conversation::respond, the whole-chat entry point HTTP APIs use: HF's golden chats sent as
// message lists (assistant history included) give HF's greedy tokens; a resent history costs only
// its new tokens; an image is reused from the cache only when its pixels are the same; cancelling
// leaves the conversation usable; log probabilities are the model's own top tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/model_data.h"
#include "engine/turn_trace.h"
#include "q3vl/error.h"
#include "support/full_model.h"
#include "support/golden.h"
#include "util/files.h"
#include "util/npy.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;

class Respond : public test::FullModelTest {};
using test::greedy;

using test::case_messages;

TEST_F(Respond, EveryFullModelCaseGivesHfTokens) {
  int checked = 0;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (c.model() != "full") continue;
    SCOPED_TRACE(c.name);
    ++checked;
    Conversation conversation(model());
    TurnTrace trace;
    const Reply reply = conversation.respond(case_messages(c), greedy(32), nullptr, &trace);
    EXPECT_EQ(trace.prompt_ids, c.load("input_ids").as_int64());
    EXPECT_EQ(reply.tokens, c.load("greedy_tokens").as_int64());
    EXPECT_EQ(reply.prompt_tokens, static_cast<std::int64_t>(trace.prompt_ids.size()));
    EXPECT_EQ(reply.cached_tokens, 0);
  }
  // full_text_only, full_image_system, full_two_turn (with an assistant message in its history).
  EXPECT_EQ(checked, 3);
}

// HF's three-turn chat resent whole each turn, as OpenAI clients do: HF's prompts and replies, and
// each turn computes only what follows the previous prompt and reply.
TEST_F(Respond, ResentHistoryGivesHfRepliesAndComputesOnlyNewTokens) {
  const auto& chat = test::golden_manifest()["chats"]["full_chat"];
  const fs::path dir = test::golden_dir() / chat["dir"].get<std::string>();
  Conversation conversation(model());
  std::vector<Message> messages;
  std::int64_t previous_total = 0;
  int turns = 0;
  for (const auto& turn : chat["turns"]) {
    Message user{"user", {}};
    for (const auto& image : turn["images"]) user.content.push_back(decode_image_file(dir / image.get<std::string>()));
    user.content.push_back(turn["user"].get<std::string>());
    messages.push_back(user);
    TurnTrace trace;
    const Reply reply = conversation.respond(messages, greedy(chat["max_new_tokens"].get<std::int64_t>()), nullptr, &trace);
    EXPECT_EQ(trace.prompt_ids, read_npy(dir / turn["input_ids"].get<std::string>()).as_int64());
    EXPECT_EQ(reply.tokens, read_npy(dir / turn["output_ids"].get<std::string>()).as_int64());
    if (turns > 0) {
      // Everything up to the previous reply's last fed token (the reply's tokens re-rendered as
      // text are the same tokens here).
      EXPECT_GE(reply.cached_tokens, previous_total - 1) << "turn " << turns;
      EXPECT_EQ(static_cast<std::int64_t>(trace.input_ids.size()), reply.prompt_tokens - reply.cached_tokens);
    }
    previous_total = reply.prompt_tokens + static_cast<std::int64_t>(reply.tokens.size());
    messages.push_back(Message{"assistant", {turn["reply"].get<std::string>()}});
    ++turns;
  }
  EXPECT_EQ(turns, 3);
}

// Two images of the same size have the same tokens; only the pixels tell them apart.
TEST_F(Respond, AnotherImageOfTheSameSizeIsNotTakenFromTheCache) {
  const test::GoldenCase c = test::golden_case("full_image_system");
  std::vector<Message> first = case_messages(c);
  std::vector<Message> second = first;
  RgbImage& other = std::get<RgbImage>(second.back().content.front());
  for (std::uint8_t& value : other.pixels) value = static_cast<std::uint8_t>(255 - value);

  const std::vector<std::int64_t> hf = c.load("greedy_tokens").as_int64();
  const std::vector<std::int64_t> ids = c.load("input_ids").as_int64();
  const auto image_start = std::find(ids.begin(), ids.end(), model()->data().package.config().image_token_id) - ids.begin();
  ASSERT_LT(image_start, static_cast<std::ptrdiff_t>(ids.size()));

  Conversation conversation(model());
  EXPECT_EQ(conversation.respond(first, greedy(32)).tokens, hf);
  const Reply changed = conversation.respond(second, greedy(32));
  EXPECT_LE(changed.cached_tokens, image_start) << "the other image's tokens came from the cache";
  Conversation fresh(model());
  EXPECT_EQ(changed.tokens, fresh.respond(second, greedy(32)).tokens);
  // The same image again, as a new copy: everything but the last prompt token comes from the cache.
  std::vector<Message> again = second;
  const Reply repeated = conversation.respond(again, greedy(32));
  EXPECT_EQ(repeated.cached_tokens, repeated.prompt_tokens - 1);
  EXPECT_EQ(repeated.tokens, changed.tokens);
}

// Cancelling mid-reply throws Cancelled and leaves the conversation able to give HF's reply.
TEST_F(Respond, CancelledReplyLeavesTheConversationUsable) {
  const test::GoldenCase c = test::golden_case("full_two_turn");
  Conversation conversation(model());
  ReplyOptions options = greedy(32);
  int pieces = 0;
  options.cancelled = [&] { return pieces >= 3; };
  EXPECT_THROW(conversation.respond(case_messages(c), options, [&](std::string_view) { ++pieces; }), Cancelled);
  EXPECT_EQ(pieces, 3);
  EXPECT_EQ(conversation.turns(), 0);
  int prompt_ready = 0;
  ReplyOptions plain = greedy(32);
  plain.on_prompt_ready = [&](std::int64_t prompt, std::int64_t) {
    ++prompt_ready;
    EXPECT_EQ(prompt, static_cast<std::int64_t>(c.load("input_ids").as_int64().size()));
  };
  EXPECT_EQ(conversation.respond(case_messages(c), plain).tokens, c.load("greedy_tokens").as_int64());
  EXPECT_EQ(prompt_ready, 1);
  // Cancelled before anything ran.
  ReplyOptions at_once = greedy(32);
  at_once.cancelled = [] { return true; };
  Conversation other(model());
  EXPECT_THROW(other.respond(case_messages(c), at_once), Cancelled);
  EXPECT_EQ(other.cached_tokens(), 0);
}

// Log probabilities: the greedy token is the most likely, and each step's top tokens are HF's
// top-k of the raw logits (step_topk_ids), in order.
TEST_F(Respond, LogprobsAreTheModelsTopTokens) {
  const test::GoldenCase c = test::golden_case("full_image_system");
  const std::vector<std::int64_t> hf_top = c.load("step_topk_ids").as_int64();  // [32, 16]
  Conversation conversation(model());
  ReplyOptions options = greedy(32);
  options.top_logprobs = 5;
  std::size_t streamed = 0;
  options.on_token = [&](const TokenChoice&) { ++streamed; };
  const Reply reply = conversation.respond(case_messages(c), options);
  ASSERT_EQ(reply.logprobs.size(), reply.tokens.size());
  EXPECT_EQ(streamed, reply.tokens.size());
  ASSERT_EQ(reply.tokens.size(), 32u);
  for (std::size_t step = 0; step < reply.logprobs.size(); ++step) {
    const TokenChoice& choice = reply.logprobs[step];
    ASSERT_EQ(choice.top.size(), 5u);
    EXPECT_EQ(choice.chosen.token, reply.tokens[step]);
    EXPECT_EQ(choice.chosen.logprob, choice.top[0].logprob);
    double mass = 0;
    for (std::size_t k = 0; k < choice.top.size(); ++k) {
      EXPECT_EQ(choice.top[k].token, hf_top[step * 16 + k]) << "step " << step << " rank " << k;
      EXPECT_LE(choice.top[k].logprob, 0.0f);
      if (k > 0) {
        EXPECT_LE(choice.top[k].logprob, choice.top[k - 1].logprob);
      }
      mass += std::exp(choice.top[k].logprob);
    }
    EXPECT_LE(mass, 1.0 + 1e-5);
  }
}

// The model's shared feature cache: a second conversation sending the same image (a new copy)
// skips the vision encoder and still gives HF's tokens; another image is encoded; a cache too small
// for one image keeps nothing.
TEST_F(Respond, SharedVisionCacheSkipsTheEncoderForAnImageSeenBefore) {
  ModelOptions options;
  options.vision_cache_bytes = 64ull << 20;
  const std::shared_ptr<const Model> cached = Model::load(package(), options);
  const test::GoldenCase c = test::golden_case("full_image_system");
  const std::vector<std::int64_t> hf = c.load("greedy_tokens").as_int64();
  Conversation first(cached);
  const Reply a = first.respond(case_messages(c), greedy(32));
  EXPECT_EQ(a.tokens, hf);
  EXPECT_GT(a.timings.vision_ms, 0.0);
  Conversation second(cached);
  const Reply b = second.respond(case_messages(c), greedy(32));
  EXPECT_EQ(b.tokens, hf);
  EXPECT_EQ(b.timings.vision_ms, 0.0) << "the encoder ran for an image the cache holds";
  EXPECT_EQ(b.timings.image_tokens, a.timings.image_tokens);
  EXPECT_EQ(cached->data().vision_cache->hits(), 1);
  // Another image of the same size: encoded, and its reply is the uncached model's.
  std::vector<Message> other = case_messages(c);
  for (std::uint8_t& value : std::get<RgbImage>(other.back().content.front()).pixels) value = static_cast<std::uint8_t>(255 - value);
  Conversation third(cached);
  const Reply d = third.respond(other, greedy(32));
  EXPECT_GT(d.timings.vision_ms, 0.0);
  Conversation plain(model());
  EXPECT_EQ(d.tokens, plain.respond(other, greedy(32)).tokens);
  // One message with a cached image, a new one (another size) and the cached one again: features
  // put together in order from the cache and one encoding, as the uncached model computes them.
  const RgbImage seen = std::get<RgbImage>(case_messages(c).back().content.front());
  const test::GoldenCase two = test::golden_case("full_two_turn");
  const RgbImage unseen = decode_image_file(test::golden_dir() / two.entry["dir"].get<std::string>() / "image0.png");
  const std::vector<Message> mixed = {Message{"user", {seen, unseen, seen, std::string("Compare them.")}}};
  Conversation fourth(cached);
  const Reply m = fourth.respond(mixed, greedy(16));
  Conversation plain_mixed(model());
  EXPECT_EQ(m.tokens, plain_mixed.respond(mixed, greedy(16)).tokens);

  options.vision_cache_bytes = 1024;  // smaller than one image's features
  const std::shared_ptr<const Model> tiny = Model::load(package(), options);
  Conversation e(tiny), f(tiny);
  e.respond(case_messages(c), greedy(4));
  EXPECT_GT(f.respond(case_messages(c), greedy(4)).timings.vision_ms, 0.0);
  EXPECT_EQ(tiny->data().vision_cache->bytes(), 0u);
}

// A package whose tokenizer_config.json carries another template renders chats with it (through the
// Jinja interpreter): here the reference template behind a fixed system turn, which gives the
// tokens the reference template gives the same chat with that system message.
TEST_F(Respond, ThePackagesOwnTemplateRendersTheChat) {
  const fs::path custom = dir().path() / "pkg-custom-template";
  fs::create_directories(custom);
  for (const fs::directory_entry& entry : fs::directory_iterator(package())) {
    if (entry.path().filename() != "tokenizer_config.json") fs::create_symlink(entry.path(), custom / entry.path().filename());
  }
  nlohmann::json config = nlohmann::json::parse(read_text_file(package() / "tokenizer_config.json"));
  config["chat_template"] = "{{- '<|im_start|>system\\nYou are Q.<|im_end|>\\n' }}" + config["chat_template"].get<std::string>();
  std::ofstream(custom / "tokenizer_config.json") << config.dump();
  const std::shared_ptr<const Model> custom_model = Model::load(custom);

  TurnTrace by_custom, by_reference;
  Conversation(custom_model).respond({Message{"user", {std::string("Hello there")}}}, greedy(2), nullptr, &by_custom);
  Conversation(model()).respond({Message{"system", {std::string("You are Q.")}}, Message{"user", {std::string("Hello there")}}},
                                greedy(2), nullptr, &by_reference);
  EXPECT_EQ(by_custom.prompt_ids, by_reference.prompt_ids);
  EXPECT_FALSE(by_custom.prompt_ids.empty());
}

TEST_F(Respond, MalformedChatsAreRefused) {
  Conversation conversation(model());
  RgbImage image{2, 2, std::vector<std::uint8_t>(12, 7), "tiny"};
  auto refused = [&](const std::vector<Message>& messages, const std::string& phrase) {
    try {
      conversation.respond(messages, greedy(4));
      ADD_FAILURE() << "accepted, expected: " << phrase;
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
  };
  refused({}, "no messages");
  refused({Message{"user", {std::string("hi")}}, Message{"assistant", {std::string("hello")}}}, "last message must be the user's");
  refused({Message{"assistant", {image}}, Message{"user", {std::string("hi")}}}, "only be in user messages");
  refused({Message{"robot", {std::string("x")}}, Message{"user", {std::string("hi")}}}, "unknown role");
  refused({Message{"user", {std::string("a <|image_pad|> b")}}}, "<|image_pad|>");
  EXPECT_EQ(conversation.turns(), 0);
}

}  // namespace
}  // namespace q3vl
