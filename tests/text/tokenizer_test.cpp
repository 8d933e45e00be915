// The tokenizer against Hugging Face `tokenizers` on the real Qwen3 tokenizer.json: encode and
// decode fixtures from tools/golden/gen_tokenizer_fixtures.py compared exactly, streaming decode,
// lookups, and the errors for bad input and unsupported files.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "text/tokenizer.h"
#include "support/test_support.h"
#include "util/files.h"

namespace q3vl {
namespace {

using nlohmann::json;

std::filesystem::path qwen_tokenizer_json() { return std::filesystem::path(Q3VL_TOKENIZER_DIR) / "tokenizer.json"; }
std::filesystem::path fixture_dir() { return test::source_dir() / "tests" / "fixtures" / "tokenizer"; }

json read_json(const std::filesystem::path& path) { return json::parse(read_text_file(path)); }

// Strict UTF-8 check written independently of the tokenizer's own.
bool is_valid_utf8(const std::string& text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t value = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      length = 2;
      value = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3;
      value = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4;
      value = c & 0x07u;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      value = (value << 6) | (next & 0x3Fu);
    }
    static constexpr std::uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (value < kSmallest[length] || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return false;
    i += length;
  }
  return true;
}

std::string show_ids(const std::vector<std::int64_t>& ids) {
  std::string out = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
  return out + "]";
}

class Tokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (std::filesystem::exists(qwen_tokenizer_json())) {
      tokenizer_ = std::make_unique<q3vl::Tokenizer>(q3vl::Tokenizer::load(qwen_tokenizer_json()));
    }
  }
  static void TearDownTestSuite() { tokenizer_.reset(); }
  void SetUp() override {
    if (!tokenizer_) GTEST_SKIP() << "no Qwen tokenizer at " << qwen_tokenizer_json() << " (run scripts/setup.sh)";
  }
  static const q3vl::Tokenizer& tok() { return *tokenizer_; }

  // Pushes `ids` one at a time; every piece must be valid UTF-8 on its own.
  static std::string stream_decode(const std::vector<std::int64_t>& ids, bool skip_special, const std::string& label) {
    TokenStreamDecoder stream(tok(), skip_special);
    std::string text;
    for (const std::int64_t id : ids) {
      const std::string piece = stream.push(id);
      EXPECT_TRUE(is_valid_utf8(piece)) << label << ": piece after id " << id << " is not valid UTF-8";
      text += piece;
    }
    const std::string tail = stream.flush();
    EXPECT_TRUE(is_valid_utf8(tail)) << label << ": flushed tail is not valid UTF-8";
    return text + tail;
  }

 private:
  static inline std::unique_ptr<q3vl::Tokenizer> tokenizer_;
};

TEST_F(Tokenizer, EncodeMatchesHuggingFaceOnEveryFixture) {
  const json fixture = read_json(fixture_dir() / "encode_cases.json");
  ASSERT_GE(fixture["cases"].size(), 300u);
  int mismatches = 0;
  for (const json& c : fixture["cases"]) {
    const std::string name = c["name"];
    const std::string text = c["text"];
    const auto expected = c["ids"].get<std::vector<std::int64_t>>();
    const auto ids = tok().encode(text);
    if (ids != expected) {
      ++mismatches;
      ADD_FAILURE() << name << ": encode differs\n  text: " << json(text).dump() << "\n  ours: " << show_ids(ids)
                    << "\n  HF:   " << show_ids(expected);
    }
    EXPECT_EQ(tok().decode(expected), c["decoded"].get<std::string>()) << name;
    EXPECT_EQ(tok().decode(expected, true), c["decoded_skip_special"].get<std::string>()) << name;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_F(Tokenizer, DecodeMatchesHuggingFaceOnEveryFixture) {
  const json fixture = read_json(fixture_dir() / "decode_cases.json");
  ASSERT_GE(fixture["cases"].size(), 200u);
  for (const json& c : fixture["cases"]) {
    const std::string name = c["name"];
    const auto ids = c["ids"].get<std::vector<std::int64_t>>();
    EXPECT_EQ(tok().decode(ids), c["text"].get<std::string>()) << name << " " << show_ids(ids);
    EXPECT_EQ(tok().decode(ids, true), c["text_skip_special"].get<std::string>()) << name << " " << show_ids(ids);
  }
}

// HF's regex engine has Unicode 16 classes, PCRE2 10.42 Unicode 14, and their \s differ on U+180E:
// the pre-tokenizer must class every code point as HF does. The probe "!XaXX" splits one way for
// each class (see regex_class_probe in tools/golden/gen_tokenizer_fixtures.py).
TEST_F(Tokenizer, PreTokenizerClassesEveryCodePointLikeHuggingFace) {
  const json fixture = read_json(fixture_dir() / "hf_unicode.json");
  std::vector<char> kind_of(0x110000, 'O');
  for (const json& range : fixture["regex_class_ranges"]) {
    const auto first = range[0].get<std::uint32_t>();
    const auto last = range[1].get<std::uint32_t>();
    for (std::uint32_t cp = first; cp <= last; ++cp) kind_of[cp] = range[2].get<std::string>()[0];
  }
  int mismatches = 0;
  for (std::uint32_t cp = 0; cp < 0x110000; ++cp) {
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == '\r' || cp == '\n') continue;
    std::string x;
    if (cp < 0x80) {
      x = std::string(1, static_cast<char>(cp));
    } else if (cp < 0x800) {
      x = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    } else if (cp < 0x10000) {
      x = {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
           static_cast<char>(0x80 | (cp & 0x3F))};
    } else {
      x = {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
           static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
    }
    std::vector<std::string> expected;
    switch (kind_of[cp]) {
      case 'L': expected = {"!" + x + "a" + x + x}; break;
      case 'N': expected = {"!", x, "a", x, x}; break;
      case 'S': expected = {"!", x + "a", x + x}; break;
      default: expected = {"!" + x, "a", x + x}; break;
    }
    const auto words = tok().pre_tokenize("!" + x + "a" + x + x);
    if (words != expected && ++mismatches <= 20) {
      ADD_FAILURE() << "U+" << std::hex << cp << ": HF classes it " << kind_of[cp] << ", we split it into "
                    << json(words).dump();
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_F(Tokenizer, StreamingDecodeConcatenatesToDecode) {
  for (const char* file : {"decode_cases.json", "encode_cases.json"}) {
    const json fixture = read_json(fixture_dir() / file);
    for (const json& c : fixture["cases"]) {
      const std::string name = c["name"];
      const auto ids = c["ids"].get<std::vector<std::int64_t>>();
      for (const bool skip : {false, true}) {
        EXPECT_EQ(stream_decode(ids, skip, name), tok().decode(ids, skip)) << name << " skip_special=" << skip;
      }
    }
  }
}

TEST_F(Tokenizer, StreamingHoldsBackHalfACharacter) {
  // "€" is E2 82 AC; as single-byte tokens it arrives in three pieces.
  const std::vector<std::int64_t> euro = {*tok().token_id("â"), *tok().token_id("Ĥ"), *tok().token_id("¬")};
  ASSERT_EQ(tok().decode(euro), "\u20AC");
  TokenStreamDecoder stream(tok());
  EXPECT_EQ(stream.push(euro[0]), "");
  EXPECT_EQ(stream.push(euro[1]), "");
  EXPECT_EQ(stream.push(euro[2]), "\u20AC");
  EXPECT_EQ(stream.flush(), "");
  // An unfinished character comes out of flush() as one U+FFFD, and the decoder starts afresh.
  EXPECT_EQ(stream.push(euro[0]), "");
  EXPECT_EQ(stream.flush(), "\uFFFD");
  EXPECT_EQ(stream.push(*tok().token_id("A")), "A");
  // A byte that cannot continue the character ends it at once.
  EXPECT_EQ(stream.push(euro[0]), "");
  EXPECT_EQ(stream.push(*tok().token_id("A")), "\uFFFDA");
}

TEST_F(Tokenizer, Lookups) {
  EXPECT_EQ(tok().vocab_size(), 151669);
  EXPECT_EQ(tok().token_id("<|endoftext|>"), 151643);
  EXPECT_EQ(tok().token_id("<|im_start|>"), 151644);
  EXPECT_EQ(tok().token_id("<|im_end|>"), 151645);
  EXPECT_EQ(tok().token_id("<|image_pad|>"), 151655);
  EXPECT_EQ(tok().token_id("<think>"), 151667);
  EXPECT_EQ(tok().token_id("Hello"), 9707);
  EXPECT_EQ(tok().token_id("Ġworld"), 1879);
  EXPECT_EQ(tok().token_id("<|no_such_token|>"), std::nullopt);
  EXPECT_TRUE(tok().is_special(151645));
  EXPECT_TRUE(tok().is_special(151655));
  EXPECT_FALSE(tok().is_special(151667));  // <think> is an added token but not "special"
  EXPECT_FALSE(tok().is_special(9707));
  EXPECT_FALSE(tok().is_special(-1));
  EXPECT_FALSE(tok().is_special(151669));
}

TEST_F(Tokenizer, DropsIdsWithoutATokenLikeHuggingFace) {
  // The model's padded embedding rows (151669..151935) and negative ids decode to nothing.
  const std::vector<std::int64_t> ids = {9707, 151669, -1, 151935, 1879};
  EXPECT_EQ(tok().decode(ids), "Hello world");
  EXPECT_EQ(stream_decode(ids, false, "unknown ids"), "Hello world");
}

TEST_F(Tokenizer, RejectsInvalidUtf8WithItsOffset) {
  try {
    tok().encode(std::string("abc\xC3(def", 8));
    FAIL() << "no exception";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("byte offset 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tok().encode("\xED\xA0\x80"), InvalidInput);  // a UTF-16 surrogate
  EXPECT_THROW(tok().encode("\xC0\xAF"), InvalidInput);      // overlong '/'
  EXPECT_THROW(tok().encode("ok \xF0\x9F\x98"), InvalidInput);  // truncated at the end
  EXPECT_NO_THROW(tok().encode(std::string("nul\0inside", 10)));
}

TEST_F(Tokenizer, ConcurrentEncodesAgree) {
  const std::string text = "Multithreaded tokenization: Ünïcödé, 中文, emoji 🎉, numbers 12345. ";
  const auto expected = tok().encode(text);
  std::vector<std::vector<std::int64_t>> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&result, &text] {
      for (int i = 0; i < 50; ++i) result = tok().encode(text + std::to_string(i));
      result = tok().encode(text);
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
}

// ---------------------------------------------------------------------------------------------
// Small hand-made tokenizer files: both merge spellings, and the errors.

json tiny_tokenizer(const json& merges) {
  json vocab = json::object();
  std::int64_t next = 0;
  for (const char* token : {"a", "b", "c", "Ġ", "ab", "abc", "Ġa"}) vocab[token] = next++;
  return json{
      {"version", "1.0"},
      {"added_tokens", json::array({json{{"id", 7}, {"content", "<|end|>"}, {"special", true}, {"normalized", false},
                                        {"lstrip", false}, {"rstrip", false}, {"single_word", false}}})},
      {"normalizer", json{{"type", "NFC"}}},
      {"pre_tokenizer",
       json{{"type", "Sequence"},
            {"pretokenizers",
             json::array({json{{"type", "Split"}, {"pattern", json{{"Regex", " ?\\p{L}+|\\s+"}}}, {"behavior", "Isolated"},
                               {"invert", false}},
                          json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                               {"use_regex", false}}})}}},
      {"decoder", json{{"type", "ByteLevel"}}},
      {"model", json{{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"vocab", vocab}, {"merges", merges}}},
  };
}

q3vl::Tokenizer load_json(const test::TempDir& dir, const json& content) {
  const auto path = dir / "tokenizer.json";
  write_text_file(path, content.dump());
  return q3vl::Tokenizer::load(path);
}

std::string load_error(const test::TempDir& dir, const std::string& content) {
  const auto path = dir / "tokenizer.json";
  write_text_file(path, content);
  try {
    q3vl::Tokenizer::load(path);
  } catch (const InvalidInput& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path.string()), std::string::npos) << "message does not name the file: " << message;
    return message;
  }
  ADD_FAILURE() << "no InvalidInput for " << content.substr(0, 200);
  return {};
}

TEST(TokenizerFile, MergesAsStringsOrPairsAgree) {
  const test::TempDir dir;
  const auto as_strings = load_json(dir, tiny_tokenizer(json::array({"a b", "ab c", "Ġ a"})));
  const auto as_pairs = load_json(dir, tiny_tokenizer(json::array({json::array({"a", "b"}), json::array({"ab", "c"}),
                                                                   json::array({"Ġ", "a"})})));
  const std::vector<std::int64_t> expected = {5, 6, 0, 4, 7, 2, 1};  // "abc", " a", "a", "ab", <|end|>, "c", "b"
  EXPECT_EQ(as_strings.encode("abc aaab<|end|>cb"), expected);
  EXPECT_EQ(as_pairs.encode("abc aaab<|end|>cb"), expected);
  EXPECT_EQ(as_pairs.decode(expected), "abc aaab<|end|>cb");
  EXPECT_EQ(as_pairs.decode(expected, true), "abc aaabcb");
  EXPECT_EQ(as_pairs.vocab_size(), 8);
  // Bytes with no token (no unk token, no byte fallback) are dropped, as HF does.
  EXPECT_EQ(as_pairs.encode("xa"), std::vector<std::int64_t>{0});
}

TEST(TokenizerFile, ErrorsNameTheFile) {
  const test::TempDir dir;
  EXPECT_NE(load_error(dir, "{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(load_error(dir, "[]").find("not a JSON object"), std::string::npos);

  json wordpiece = tiny_tokenizer(json::array({"a b"}));
  wordpiece["model"]["type"] = "WordPiece";
  EXPECT_NE(load_error(dir, wordpiece.dump()).find("WordPiece"), std::string::npos);

  json byte_fallback = tiny_tokenizer(json::array({"a b"}));
  byte_fallback["model"]["byte_fallback"] = true;
  EXPECT_NE(load_error(dir, byte_fallback.dump()).find("byte_fallback"), std::string::npos);

  json lstrip = tiny_tokenizer(json::array({"a b"}));
  lstrip["added_tokens"][0]["lstrip"] = true;
  EXPECT_NE(load_error(dir, lstrip.dump()).find("lstrip"), std::string::npos);

  json bad_merge = tiny_tokenizer(json::array({"a b", "x y"}));
  EXPECT_NE(load_error(dir, bad_merge.dump()).find("model.merges[1]"), std::string::npos);

  json bad_regex = tiny_tokenizer(json::array({"a b"}));
  bad_regex["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  EXPECT_NE(load_error(dir, bad_regex.dump()).find("regex"), std::string::npos);

  json nfkc = tiny_tokenizer(json::array({"a b"}));
  nfkc["normalizer"]["type"] = "NFKC";
  EXPECT_NE(load_error(dir, nfkc.dump()).find("normalizer"), std::string::npos);

  EXPECT_THROW(q3vl::Tokenizer::load(dir / "missing.json"), InvalidInput);
}

// Fields of the wrong JSON type are the file's fault: InvalidInput naming it and the field, never a
// JSON library exception escaping to the caller.
TEST(TokenizerFile, WrongFieldTypesNameTheFile) {
  const test::TempDir dir;
  std::size_t cases = 0;
  const auto expect_invalid = [&](const std::string& field, const std::function<void(json&)>& corrupt) {
    json content = tiny_tokenizer(json::array({"a b"}));
    corrupt(content);
    const std::string message = load_error(dir, content.dump());
    EXPECT_NE(message.find(field), std::string::npos) << content.dump() << " -> " << message;
    ++cases;
  };
  expect_invalid("special", [](json& t) { t["added_tokens"][0]["special"] = nullptr; });
  expect_invalid("special", [](json& t) { t["added_tokens"][0]["special"] = "yes"; });
  expect_invalid("normalized", [](json& t) { t["added_tokens"][0]["normalized"] = 1.5; });
  expect_invalid("model.type", [](json& t) { t["model"]["type"] = 3; });
  expect_invalid("normalizer.type", [](json& t) { t["normalizer"]["type"] = json::array(); });
  expect_invalid("pre_tokenizer.type", [](json& t) { t["pre_tokenizer"]["type"] = nullptr; });
  expect_invalid("invert", [](json& t) { t["pre_tokenizer"]["pretokenizers"][0]["invert"] = "no"; });
  expect_invalid("use_regex", [](json& t) { t["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = 0; });
  expect_invalid("decoder.type", [](json& t) { t["decoder"]["type"] = false; });
  EXPECT_EQ(cases, 9u);
}

}  // namespace
}  // namespace q3vl
