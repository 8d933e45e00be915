#include "support/full_model.h"

#include "export/package_writer.h"

namespace q3vl::test {

TempDir* FullModelTest::dir_ = nullptr;
std::shared_ptr<const Model>* FullModelTest::model_ = nullptr;

void FullModelTest::SetUpTestSuite() {
  dir_ = new TempDir();
  PackageOptions options;
  options.tokenizer_dir = Q3VL_TOKENIZER_DIR;
  build_package(golden_dir() / "models" / "full", package(), options);
  model_ = new std::shared_ptr<const Model>(Model::load(package()));
}

void FullModelTest::TearDownTestSuite() {
  delete model_;
  model_ = nullptr;
  delete dir_;
  dir_ = nullptr;
}

ReplyOptions greedy(std::int64_t max_new_tokens) {
  ReplyOptions o;
  o.sampling = SamplingOptions{};
  o.sampling->greedy = true;
  o.max_new_tokens = max_new_tokens;
  return o;
}

}  // namespace q3vl::test
