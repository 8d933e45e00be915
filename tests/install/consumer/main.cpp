// A program written against the installed public API only: loads a package once, answers the same
// prompt in two conversations on two threads, and prints the reply (the test compares it with the
// CLI's). Exits 1 with a message on any error or disagreement.
#include <cstdio>
#include <string>
#include <thread>

#include <q3vl/q3vl.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: consumer PACKAGE PROMPT\n");
    return 2;
  }
  try {
    const std::shared_ptr<const q3vl::Model> model = q3vl::Model::load(argv[1]);
    q3vl::ReplyOptions options;
    options.sampling = q3vl::SamplingOptions{};
    options.sampling->greedy = true;
    options.max_new_tokens = 8;
    std::string replies[2];
    std::thread threads[2];
    for (int i = 0; i < 2; ++i) {
      threads[i] = std::thread([&, i] {
        q3vl::Conversation conversation(model);
        replies[i] = conversation.send({}, argv[2], options).text;
      });
    }
    for (std::thread& t : threads) t.join();
    if (replies[0] != replies[1]) {
      std::fprintf(stderr, "consumer: the two conversations disagree\n");
      return 1;
    }
    if (model->sessions_loaded() != 2) {
      std::fprintf(stderr, "consumer: %lld sessions loaded, expected 2\n", static_cast<long long>(model->sessions_loaded()));
      return 1;
    }
    std::printf("%s\n", replies[0].c_str());
  } catch (const q3vl::Error& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
  return 0;
}
