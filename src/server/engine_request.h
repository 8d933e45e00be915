#pragma once
// A parsed chat request -> what the engine takes: messages with decoded images and clips, and the
// reply options (the package's sampling defaults with the request's values in their place).
#include <cstdint>
#include <vector>

#include "q3vl/conversation.h"
#include "q3vl/model.h"
#include "server/chat_request.h"
#include "server/media_source.h"

namespace q3vl::server {

// Decodes every image and writes every video data URL to the scratch folder. Throws ApiError 400
// naming the part for refused or undecodable media.
std::vector<Message> resolve_messages(const ChatRequest& request, const MediaPolicy& policy, RequestScratch& scratch);

struct ReplyLimits {
  std::int64_t default_max_tokens = 4096;  // when the request gives none (the context may end it sooner)
  std::int64_t max_image_pixels = 0;       // the most a request's max_pixels may ask for; 0: the package's
};

// Throws ApiError 400 for a pixel budget beyond the server's.
ReplyOptions reply_options(const ChatRequest& request, const Model& model, const ReplyLimits& limits);

}  // namespace q3vl::server
