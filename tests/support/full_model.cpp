#include "support/full_model.h"

#include "export/package_writer.h"

namespace q3vl::test {

TempDir* FullModelTest::dir_ = nullptr;
std::shared_ptr<const Model>* FullModelTest::model_ = nullptr;

void FullModelTest::SetUpTestSuite() {
  dir_ = new TempDir();
  PackageOptions options;
  options.tokenizer_dir = Q3VL_TOKENIZER_DIR;
  options.video_preprocessor_config = reference_video_preprocessor_config();
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

std::vector<Message> case_messages(const GoldenCase& c) {
  std::vector<Message> messages;
  std::size_t image = 0;
  const std::filesystem::path dir = golden_dir() / c.entry["dir"].get<std::string>();
  for (const auto& m : c.entry["messages"]) {
    Message message{m["role"].get<std::string>(), {}, {}, {}, {}};
    if (m["content"].is_string()) {
      message.content.push_back(m["content"].get<std::string>());
    } else {
      for (const auto& item : m["content"]) {
        if (item["type"] == "text") message.content.push_back(item["text"].get<std::string>());
        if (item["type"] == "image") {
          message.content.push_back(decode_image_file(dir / c.entry["images"][image++]["file"].get<std::string>()));
        }
      }
    }
    messages.push_back(std::move(message));
  }
  EXPECT_EQ(image, c.entry["images"].size());
  return messages;
}

}  // namespace q3vl::test
