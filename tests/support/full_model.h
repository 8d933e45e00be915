#pragma once
// The golden `full` model (real vocabulary and special ids; tests/fixtures/golden/models/full)
// exported to a package with the real tokenizer and loaded once per test suite, for tests that
// run whole conversations against HF's outputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "q3vl/conversation.h"
#include "support/golden.h"
#include "support/test_support.h"

namespace q3vl::test {

class FullModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  static const std::shared_ptr<const Model>& model() { return *model_; }
  static std::filesystem::path package() { return dir_->path() / "pkg"; }
  static TempDir& dir() { return *dir_; }

 private:
  static TempDir* dir_;
  static std::shared_ptr<const Model>* model_;
};

// Greedy decoding (HF's do_sample=False) for at most `max_new_tokens` tokens.
ReplyOptions greedy(std::int64_t max_new_tokens);

// A golden case's messages (HF's JSON form) with its images, in order of appearance.
std::vector<Message> case_messages(const GoldenCase& c);

}  // namespace q3vl::test
