// `q3vl chat`: interactive multi-turn chat. Lines starting with '/' are commands (see
// chat_commands.h): `/image PATH` and `/video PATH` attach an image or a video to the next user
// turn (any turn, in the order given); `/reset`
// starts over; `/quit` or end of input leaves. Earlier turns stay in the KV cache and are never
// recomputed. A turn that fails (a bad image, a full context) is reported and the chat goes on;
// only losing standard output ends it (exit 1).
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>

#include "cli/chat_commands.h"
#include "cli/commands.h"
#include "cli/generation_flags.h"
#include "cli/process_clock.h"
#include "cli/reply_output.h"
#include "q3vl/error.h"

namespace q3vl::cli {
namespace {

void report(const Error& e) { std::fprintf(stderr, "q3vl: error: %s\n", e.what()); }

void chat(GenerationFlags& flags) {
  flags.finish();
  const std::shared_ptr<const Model> model = Model::load(flags.model, flags.model_options(/*images_expected=*/true));
  if (flags.verbose) std::fprintf(stderr, "load %.0f ms\n", ms_since_process_start());
  if (flags.verbose && !model->text_model_note().empty()) std::fprintf(stderr, "%s\n", model->text_model_note().c_str());
  if (flags.verbose && !model->vision_model_note().empty()) std::fprintf(stderr, "%s\n", model->vision_model_note().c_str());
  Conversation conversation(model, flags.conversation_options(*model));
  ReplyOptions reply_options = flags.reply_options(*model);
  const bool interactive = ::isatty(0) != 0;
  std::vector<Media> pending;
  std::string line;
  for (;;) {
    if (interactive) write_reply("> ");
    if (!std::getline(std::cin, line)) break;  // end of input: leave
    const ChatLine input = parse_chat_line(line);
    switch (input.kind) {
      case ChatLine::Kind::Quit:
        return;
      case ChatLine::Kind::Help:
        std::fprintf(stderr, "%s\n", chat_commands_hint().c_str());
        continue;
      case ChatLine::Kind::Invalid:
        std::fprintf(stderr, "q3vl: %s\n", input.text.c_str());
        continue;
      case ChatLine::Kind::Reset:
        conversation.reset();
        pending.clear();
        continue;
      case ChatLine::Kind::Image:
        try {
          pending.push_back(decode_image_file(input.text));
          std::fprintf(stderr, "[image attached to the next message]\n");
        } catch (const Error& e) {
          report(e);
        }
        continue;
      case ChatLine::Kind::Video:
        try {
          pending.emplace_back(VideoClip::from_file(input.text));
          std::fprintf(stderr, "[video attached to the next message]\n");
        } catch (const Error& e) {
          report(e);
        }
        continue;
      case ChatLine::Kind::Text:
        break;
    }
    if (input.text.empty() && pending.empty()) continue;
    try {
      ReplyPrinter printer(flags.hide_thinking);
      reply_options.on_delta = std::ref(printer);
      const Reply reply = conversation.send(pending, input.text, reply_options, {});
      write_reply("\n");
      if (flags.verbose) std::fprintf(stderr, "%s | cached %lld tokens\n", timing_line(reply.timings).c_str(),
                                      static_cast<long long>(conversation.cached_tokens()));
    } catch (const OutputError&) {
      throw;  // nowhere to show later replies either
    } catch (const Error& e) {
      report(e);  // the conversation is unchanged; go on
    }
    pending.clear();
  }
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto flags = std::make_shared<GenerationFlags>();
  CLI::App* cmd = app.add_subcommand("chat", "Interactive multi-turn chat (/image PATH, /video PATH, /reset, /quit, /help)");
  flags->add_to(*cmd);
  cmd->callback([flags] { chat(*flags); });
}

}  // namespace q3vl::cli
