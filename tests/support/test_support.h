#pragma once
// Helpers shared by the tests: a self-deleting temporary folder and the locations of fixtures.
#include <filesystem>
#include <string>

#include "model/config.h"

namespace q3vl::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

std::filesystem::path source_dir();
std::filesystem::path golden_dir();            // tests/fixtures/golden
std::filesystem::path reference_model_files(); // assets/qwen3-vl (copies of the hub files)
// A folder with stand-in tokenizer files, for tests that write checkpoints but never tokenize.
std::filesystem::path fake_tokenizer_dir(const TempDir& dir);

// `s` quoted for /bin/sh.
std::string shell_quote(const std::string& s);
// Runs a shell command and returns its standard output; `status` gets what pclose returned.
std::string run_command(const std::string& command, int& status);

// The "tiny" random-checkpoint preset with a 1024-token vocabulary: a checkpoint of ~1 MB.
ModelConfig small_vocab_tiny_config(bool tied);

}  // namespace q3vl::test
