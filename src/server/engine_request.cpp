#include "server/engine_request.h"

namespace q3vl::server {

std::vector<Message> resolve_messages(const ChatRequest& request, const MediaPolicy& policy, RequestScratch& scratch) {
  std::vector<Message> messages;
  messages.reserve(request.messages.size());
  for (std::size_t m = 0; m < request.messages.size(); ++m) {
    const RequestMessage& source = request.messages[m];
    Message message{source.role == "developer" ? "system" : source.role, {}, source.tool_calls, source.reasoning, source.tool_call_id};
    for (std::size_t p = 0; p < source.content.size(); ++p) {
      const RequestPart& part = source.content[p];
      const std::string param = "messages[" + std::to_string(m) + "].content[" + std::to_string(p) + "]";
      switch (part.kind) {
        case RequestPart::Kind::Text:
          message.content.emplace_back(part.text);
          break;
        case RequestPart::Kind::Image:
          message.content.emplace_back(std::get<RgbImage>(resolve_media(false, part.text, policy, scratch, param + ".image_url.url")));
          break;
        case RequestPart::Kind::Video:
          message.content.emplace_back(std::get<VideoClip>(resolve_media(true, part.text, policy, scratch, param + ".video_url.url")));
          break;
      }
    }
    messages.push_back(std::move(message));
  }
  return messages;
}

ReplyOptions reply_options(const ChatRequest& request, const Model& model, const ReplyLimits& limits) {
  ReplyOptions options;
  SamplingOptions sampling = model.default_sampling();
  if (request.temperature) {
    // OpenAI's temperature 0 is greedy decoding.
    sampling.greedy = *request.temperature == 0.0;
    if (!sampling.greedy) sampling.temperature = static_cast<float>(*request.temperature);
  }
  if (request.top_p) sampling.top_p = static_cast<float>(*request.top_p);
  if (request.top_k) sampling.top_k = *request.top_k;
  if (request.min_p) sampling.min_p = static_cast<float>(*request.min_p);
  if (request.repetition_penalty) sampling.repetition_penalty = static_cast<float>(*request.repetition_penalty);
  if (request.presence_penalty) sampling.presence_penalty = static_cast<float>(*request.presence_penalty);
  if (request.frequency_penalty) sampling.frequency_penalty = static_cast<float>(*request.frequency_penalty);
  if (request.seed) sampling.seed = *request.seed;
  options.sampling = sampling;
  options.max_new_tokens = request.max_tokens.value_or(limits.default_max_tokens);
  options.stop_strings = request.stop;
  options.top_logprobs = request.logprobs ? static_cast<int>(request.top_logprobs.value_or(0)) : -1;
  options.response_format = request.response_format;
  options.tools = request.tools;
  options.tool_choice = request.tool_choice;
  options.template_variables = request.chat_template_kwargs;

  const std::int64_t per_token = model.pixels_per_image_token();
  const std::int64_t cap = limits.max_image_pixels > 0 ? std::max<std::int64_t>(1, limits.max_image_pixels / per_token) : model.max_image_tokens();
  if (request.max_pixels) {
    const std::int64_t tokens = std::max<std::int64_t>(1, *request.max_pixels / per_token);
    if (tokens > cap) {
      throw ApiError(400, "max_pixels " + std::to_string(*request.max_pixels) + " is more than this server allows per image (" +
                              std::to_string(cap * per_token) + ")", "max_pixels");
    }
    options.max_image_tokens = tokens;
  } else if (limits.max_image_pixels > 0) {
    options.max_image_tokens = cap;
  }
  if (request.min_pixels) {
    const std::int64_t tokens = std::max<std::int64_t>(1, (*request.min_pixels + per_token - 1) / per_token);
    if (tokens > cap) {
      throw ApiError(400, "min_pixels " + std::to_string(*request.min_pixels) + " is more than this server allows per image (" +
                              std::to_string(cap * per_token) + ")", "min_pixels");
    }
    options.min_image_tokens = tokens;
  }
  return options;
}

}  // namespace q3vl::server
