#pragma once
// A request's media references -> images and clips the engine takes. Only two sources exist:
// `data:` URLs (base64, any image format q3vl decodes; a video's bytes go to a file in the server's
// own scratch folder, removed when the request ends), and local files under the one folder the
// operator allowed (--allowed-media-dir), given as `file://` URLs or paths relative to that folder.
// Everything else is refused with a message saying why: remote http(s) URLs (q3vl fetches nothing),
// paths escaping the folder (`..`, absolute paths elsewhere, symbolic links leading out), local
// files when no folder was allowed.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "q3vl/conversation.h"
#include "q3vl/image.h"
#include "server/api_error.h"

namespace q3vl::server {

// A `data:[<mediatype>][;base64],<payload>` URL split and decoded. Throws ApiError 400 (param as
// given) for anything else: not a data URL, bad base64 (strict RFC 4648: padding checked, no
// characters outside the alphabet; whitespace is not accepted), a payload over `max_bytes`.
struct DataUrl {
  std::string media_type;  // "image/png", "" when absent
  std::vector<std::uint8_t> bytes;
};
DataUrl parse_data_url(std::string_view url, std::uint64_t max_bytes, const std::string& param);

// Strict base64 (RFC 4648 alphabet with padding); std::nullopt for invalid input.
std::optional<std::vector<std::uint8_t>> decode_base64(std::string_view text);

struct MediaPolicy {
  std::optional<std::filesystem::path> allowed_media_dir;  // none: local files are refused
  std::filesystem::path scratch_dir;  // where video data URLs are written (the server creates it)
  ImageLimits image_limits;           // decoded size and file size of one image
  std::uint64_t max_video_bytes = 256ull << 20;
};

// Files a request wrote to the scratch folder; removed when it is destroyed (only those).
class RequestScratch {
 public:
  RequestScratch() = default;
  RequestScratch(const RequestScratch&) = delete;
  RequestScratch& operator=(const RequestScratch&) = delete;
  ~RequestScratch();
  void add(std::filesystem::path file) { files_.push_back(std::move(file)); }

 private:
  std::vector<std::filesystem::path> files_;
};

// One image_url/video_url part -> Media. `param` names the part in errors. Throws ApiError 400 for
// refused or undecodable media (the decoder's InvalidInput message included).
Media resolve_media(bool video, const std::string& url, const MediaPolicy& policy, RequestScratch& scratch,
                    const std::string& param);

}  // namespace q3vl::server
