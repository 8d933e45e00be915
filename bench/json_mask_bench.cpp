// Constrained decoding's cost per token (issue 15): the time to compute the mask of tokens that can
// continue a JSON document, in the states a reply passes through, on the real Qwen vocabulary.
// Compare with a decode step of the model (decode_bench): the target is under 10% of it.
//   json_mask_bench [TOKENIZER_JSON] [--runs N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/json_token_mask.h"

int main(int argc, char** argv) {
  using namespace q3vl;
  std::string tokenizer_path = std::string(Q3VL_TOKENIZER_DIR) + "/tokenizer.json";
  int runs = 20;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--runs" && i + 1 < argc) runs = std::atoi(argv[++i]);
    else tokenizer_path = argv[i];
  }
  try {
    const Tokenizer tokenizer = Tokenizer::load(tokenizer_path);
    auto start = std::chrono::steady_clock::now();
    const JsonTokenMask mask(tokenizer);
    std::printf("vocabulary %lld tokens; trie built in %.0f ms\n", static_cast<long long>(tokenizer.vocab_size()),
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    const JsonSchema schema = JsonSchema::compile(nlohmann::ordered_json::parse(
        R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"enum":["red","green"]}},"bio":{"type":"string","maxLength":40}},"required":["name","age"]})"));
    const std::int64_t eos[] = {151645};
    const std::pair<const char*, std::string> states[] = {
        {"start of document", ""},
        {"object key", "{\""},
        {"free string value", "{\"name\":\"Ada Lo"},
        {"string, a character cut short", "{\"name\":\"Ad\xC3"},
        {"number", "{\"name\":\"Ada\",\"age\":3"},
        {"enum inside array", "{\"name\":\"Ada\",\"age\":3,\"tags\":[\"re"},
        {"string with maxLength", "{\"name\":\"Ada\",\"age\":3,\"bio\":\"Mathematician"},
    };
    std::vector<std::uint8_t> allowed;
    for (const auto& [label, prefix] : states) {
      JsonMatcher matcher(schema.root());
      if (!matcher.feed(prefix)) throw std::runtime_error(std::string("the bench's prefix does not match: ") + label);
      start = std::chrono::steady_clock::now();
      for (int r = 0; r < runs; ++r) mask.compute(matcher, eos, allowed);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / runs;
      std::size_t count = 0;
      for (std::uint8_t a : allowed) count += a;
      std::printf("%-32s %7.2f ms per mask, %6zu tokens allowed\n", label, ms, count);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "json_mask_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
