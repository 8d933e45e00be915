// Tokenizer throughput: encode and decode MB/s on a large, mixed text (English prose and code,
// accented Latin, Cyrillic, CJK, emoji, digit runs, whitespace runs), plus the load time.
//   tokenizer_bench [tokenizer.json] [megabytes]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Paragraphs drawn with a fixed seed, so every run measures the same text.
std::string make_corpus(std::size_t bytes) {
  const std::vector<std::string> paragraphs = {
      "The quick brown fox jumps over the lazy dog. It's what they'd've done, isn't it? ",
      "Data flows one way, one folder per step: checkpoint reading, graph building, runtime.\n\n",
      "def encode(self, text: str) -> list[int]:\n    return [self.vocab[t] for t in text.split()]\n",
      "for (std::size_t i = 0; i < n; ++i) {\n\tsum += values[i] * 0.5f;\n}\n",
      "{\"model\": {\"type\": \"BPE\", \"dropout\": null, \"merges\": [[\"a\", \"b\"]]}, \"id\": 151645}\n",
      "Café crème, naïve façade, Ångström, São Paulo, Kraków, Dvořák. ",
      "Съешь же ещё этих мягких французских булок, да выпей чаю. ",
      "我们在北京的清华大学学习人工智能和机器学习。日本語のテキストもあります。 ",
      "한국어 문장도 포함되어 있습니다. ",
      "Emoji: 👍🏽 👨‍👩‍👧‍👦 🎉🚀 ",
      "Numbers 1234567890 and 3.14159 and 2026-11-28T20:53:00Z. ",
      "    indented    with    runs     of   spaces   \r\n\r\n",
  };
  std::mt19937 random(12345);
  std::uniform_int_distribution<std::size_t> pick(0, paragraphs.size() - 1);
  std::string text;
  while (text.size() < bytes) text += paragraphs[pick(random)];
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string path = argc > 1 ? argv[1] : std::string(Q3VL_TOKENIZER_DIR) + "/tokenizer.json";
    const double megabytes = argc > 2 ? std::atof(argv[2]) : 8.0;

    auto start = Clock::now();
    const q3vl::Tokenizer tokenizer = q3vl::Tokenizer::load(path);
    std::printf("load:   %.3f s (%lld tokens)\n", seconds_since(start), static_cast<long long>(tokenizer.vocab_size()));

    const std::string text = make_corpus(static_cast<std::size_t>(megabytes * 1e6));
    const double text_mb = static_cast<double>(text.size()) / 1e6;

    // The first pass fills the word cache; the second is the steady state a long session sees.
    std::vector<std::int64_t> ids;
    for (const char* pass : {"cold", "warm"}) {
      start = Clock::now();
      ids = tokenizer.encode(text);
      const double elapsed = seconds_since(start);
      std::printf("encode (%s): %.1f MB/s (%.2f MB -> %zu tokens in %.3f s)\n", pass, text_mb / elapsed, text_mb,
                  ids.size(), elapsed);
    }

    start = Clock::now();
    const std::string decoded = tokenizer.decode(ids);
    double elapsed = seconds_since(start);
    std::printf("decode: %.1f MB/s of text (%.3f s)%s\n", text_mb / elapsed, elapsed,
                decoded == text ? "" : "  [round trip differs: text not in NFC?]");

    start = Clock::now();
    q3vl::TokenStreamDecoder stream(tokenizer);
    std::size_t streamed_bytes = 0;
    for (const std::int64_t id : ids) streamed_bytes += stream.push(id).size();
    streamed_bytes += stream.flush().size();
    elapsed = seconds_since(start);
    std::printf("stream decode: %.1f MB/s (%zu bytes)\n", static_cast<double>(streamed_bytes) / 1e6 / elapsed,
                streamed_bytes);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
}
