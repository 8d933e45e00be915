// Runs a libFuzzer target without libFuzzer (for gcc builds and CI): every file in the corpus
// folders, then deterministic mutations of each (byte flips, truncations, length-field edits).
// The mutations share a fixed budget, so a corpus grown by long fuzzing runs keeps CTest quick.
#include <algorithm>
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
  std::vector<std::filesystem::path> seeds;
  for (int i = 1; i < argc; ++i) {
    for (const auto& entry : std::filesystem::directory_iterator(argv[i])) seeds.push_back(entry.path());
  }
  std::sort(seeds.begin(), seeds.end());  // the same mutations on every run
  constexpr std::size_t kMutationBudget = 24000;
  const std::size_t mutations_per_seed = seeds.empty() ? 0 : std::max<std::size_t>(16, kMutationBudget / seeds.size());
  for (const std::filesystem::path& path : seeds) {
    std::ifstream in(path, std::ios::binary);
    const std::vector<std::uint8_t> seed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(seed.data(), seed.size());
    ++runs;
    for (std::size_t m = 0; m < mutations_per_seed && !seed.empty(); ++m) {
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
  std::printf("replayed %zu inputs (%zu corpus files) without a crash\n", runs, seeds.size());
  return runs > 0 ? 0 : 1;
}
