// Runs a libFuzzer target without libFuzzer (for gcc builds and CI): every file in the corpus
// folders, then deterministic mutations of each (byte flips, truncations, length-field edits).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  std::size_t runs = 0;
  std::uint64_t state = 0x853c49e6748fea9bull;
  auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint32_t>(state >> 33);
  };
  for (int i = 1; i < argc; ++i) {
    for (const auto& entry : std::filesystem::directory_iterator(argv[i])) {
      std::ifstream in(entry.path(), std::ios::binary);
      const std::vector<std::uint8_t> seed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      LLVMFuzzerTestOneInput(seed.data(), seed.size());
      ++runs;
      for (int m = 0; m < 2000 && !seed.empty(); ++m) {
        std::vector<std::uint8_t> input = seed;
        const int edits = 1 + static_cast<int>(next() % 4);
        for (int e = 0; e < edits; ++e) {
          const std::size_t at = next() % input.size();
          switch (next() % 4) {
            case 0: input[at] = static_cast<std::uint8_t>(next()); break;
            case 1: input.resize(at); break;
            case 2: input[at % 8] = static_cast<std::uint8_t>(next()); break;  // header length field
            default: input.insert(input.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(next())); break;
          }
          if (input.empty()) break;
        }
        LLVMFuzzerTestOneInput(input.data(), input.size());
        ++runs;
      }
    }
  }
  std::printf("replayed %zu inputs without a crash\n", runs);
  return runs > 0 ? 0 : 1;
}
