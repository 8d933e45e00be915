#include "support/test_support.h"

#include "model/random_checkpoint.h"
#include "util/files.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace q3vl::test {

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "q3vl-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path source_dir() { return Q3VL_SOURCE_DIR; }
std::filesystem::path golden_dir() { return source_dir() / "tests" / "fixtures" / "golden"; }
std::filesystem::path reference_model_files() { return source_dir() / "assets" / "qwen3-vl"; }

std::filesystem::path fake_tokenizer_dir(const TempDir& dir) {
  const auto path = dir / "fake-tokenizer";
  std::filesystem::create_directories(path);
  write_text_file(path / "tokenizer.json", "{\"model\": {\"type\": \"BPE\"}}");
  write_text_file(path / "tokenizer_config.json", "{\"chat_template\": \"text-only\", \"eos_token\": \"<|im_end|>\"}");
  return path;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string run_command(const std::string& command, int& status) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::array<char, 4096> buffer{};
  std::size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), n);
  status = ::pclose(pipe);
  return out;
}

ModelConfig small_vocab_tiny_config(bool tied) {
  ModelConfig c = random_checkpoint_config("tiny");
  c.text.vocab_size = 1024;
  c.image_token_id = 1000;
  c.video_token_id = 1001;
  c.vision_start_token_id = 1002;
  c.vision_end_token_id = 1003;
  c.tie_word_embeddings = tied;
  return c;
}

}  // namespace q3vl::test
