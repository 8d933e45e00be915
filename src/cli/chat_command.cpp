// `q3vl chat`: interactive multi-turn chat. `/image PATH` attaches an image to the next user turn
// (any turn); `/reset` starts over; `/quit` or end of input leaves. Earlier turns stay in the KV
// cache and are never recomputed.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/generation_flags.h"
#include "q3vl/error.h"

namespace q3vl::cli {
namespace {

void chat(const GenerationFlags& flags) {
  Engine engine(flags.model, EngineOptions{flags.threads});
  const ConversationOptions options = flags.conversation_options(engine);
  auto conversation = std::make_unique<Conversation>(engine, options);
  const ReplyOptions reply_options = flags.reply_options(engine);
  const bool interactive = ::isatty(0) != 0;
  std::vector<RgbImage> pending;
  std::string line;
  for (;;) {
    if (interactive) std::fputs("> ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      conversation = std::make_unique<Conversation>(engine, options);
      pending.clear();
      continue;
    }
    if (line.rfind("/image ", 0) == 0) {
      try {
        pending.push_back(decode_image_file(line.substr(7)));
        std::fprintf(stderr, "[image attached to the next message]\n");
      } catch (const Error& e) {
        std::fprintf(stderr, "q3vl: error: %s\n", e.what());
      }
      continue;
    }
    if (line.empty() && pending.empty()) continue;
    try {
      const Reply reply = conversation->send(pending, line, reply_options, [](std::string_view piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      });
      std::fputc('\n', stdout);
      std::fflush(stdout);
      if (flags.verbose) std::fprintf(stderr, "%s | cached %lld tokens\n", timing_line(reply.timings).c_str(),
                                      static_cast<long long>(conversation->cached_tokens()));
    } catch (const Error& e) {
      std::fprintf(stderr, "q3vl: error: %s\n", e.what());  // the conversation is unchanged; go on
    }
    pending.clear();
  }
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto flags = std::make_shared<GenerationFlags>();
  CLI::App* cmd = app.add_subcommand("chat", "Interactive multi-turn chat (/image PATH, /reset, /quit)");
  flags->add_to(*cmd);
  cmd->callback([flags] { chat(*flags); });
}

}  // namespace q3vl::cli
