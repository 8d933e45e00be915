#include "server/media_source.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <random>
#include <system_error>
#include <utility>

#include "q3vl/error.h"
#include "q3vl/video.h"

namespace q3vl::server {
namespace {

namespace fs = std::filesystem;

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) { return ascii_lower(c); });
  return out;
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && ascii_lower(text.substr(0, prefix.size())) == prefix;
}

// The URL's scheme in lower case (RFC 3986: a letter, then letters, digits, + - .), or "" for a plain path.
std::string url_scheme(std::string_view url) {
  const std::size_t colon = url.find(':');
  if (colon == std::string_view::npos || colon == 0) return "";
  const auto is_alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (!is_alpha(url[0])) return "";
  for (const char c : url.substr(0, colon)) {
    if (!is_alpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.') return "";
  }
  return ascii_lower(url.substr(0, colon));
}

// Base64's alphabet (RFC 4648 §4) as values 0..63, -1 elsewhere.
constexpr std::array<std::int8_t, 256> kBase64Values = [] {
  std::array<std::int8_t, 256> table{};
  table.fill(-1);
  constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::size_t i = 0; i < alphabet.size(); ++i) table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  return table;
}();

int base64_value(char c) { return kBase64Values[static_cast<unsigned char>(c)]; }

// The file name extension FFmpeg's probing may use as a hint; the content decides in the end.
std::string_view video_extension(std::string_view media_type) {
  if (media_type == "video/mp4") return ".mp4";
  if (media_type == "video/webm") return ".webm";
  if (media_type == "video/quicktime") return ".mov";
  if (media_type == "video/x-matroska") return ".mkv";
  if (media_type == "video/x-msvideo") return ".avi";
  return ".video";
}

std::string random_hex_name() {
  std::random_device entropy;
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string name;
  for (int word = 0; word < 4; ++word) {
    std::uint32_t bits = entropy();
    for (int digit = 0; digit < 8; ++digit, bits >>= 4) name += kHex[bits & 0xF];
  }
  return name;
}

// Writes a video's bytes to a new file in the scratch folder: created exclusively (never an
// existing file or a link planted there), readable by the server's user only, registered with
// `scratch` as soon as it exists so a failed write is removed too.
fs::path write_scratch_file(const fs::path& dir, std::span<const std::uint8_t> bytes, std::string_view extension,
                            RequestScratch& scratch) {
  if (dir.empty()) throw ApiError(500, "the server has no scratch folder for video data URLs");
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string name;
    try {
      name = "q3vl-video-" + random_hex_name() + std::string(extension);
    } catch (const std::exception& error) {  // std::random_device with no entropy source
      throw ApiError(500, std::string("cannot name a scratch file for the video: ") + error.what());
    }
    const fs::path path = dir / name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      // The scratch path is the server's business: the message names only the cause.
      throw ApiError(500, std::string("cannot create a scratch file for the video: ") + std::strerror(errno));
    }
    scratch.add(path);
    std::size_t written = 0;
    int write_errno = 0;
    while (written < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        write_errno = errno;
        break;
      }
      written += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0 && write_errno == 0) write_errno = errno;
    if (write_errno != 0) throw ApiError(500, std::string("cannot write the video to a scratch file: ") + std::strerror(write_errno));
    return path;
  }
  throw ApiError(500, "cannot create a scratch file for the video: no unused name found");
}

// Percent-decodes a file URL's path; std::nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const auto hex = [](char c) {
      if (c >= '0' && c <= '9') return c - '0';
      c = ascii_lower(c);
      return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    };
    const int high = hex(text[i + 1]);
    const int low = hex(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

// `path` lies in `root` (or is it), compared by path components: /data/media2 is not in /data/media.
bool is_within(const fs::path& path, const fs::path& root) {
  const auto [root_end, path_at] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  (void)path_at;
  return root_end == root.end();
}

// An absolute, lexically normal path without a trailing separator (which would compare as an
// empty last component).
fs::path normal_form(const fs::path& path) {
  fs::path out = path.lexically_normal();
  if (!out.has_filename() && out.has_relative_path()) out = out.parent_path();
  return out;
}

// A local path as a client gave it -> the canonical file under the allowed folder. Errors name the
// part and the URL as given, never a server path.
fs::path resolve_local_file(const fs::path& requested, const std::string& url, const MediaPolicy& policy,
                            const std::string& param) {
  const std::string what = param + " (" + quoted_excerpt(url, 200) + ")";
  if (!policy.allowed_media_dir) {
    throw ApiError(400, what + ": local files need --allowed-media-dir (this server allows none); send the media as a "
                               "data: URL (base64)", param);
  }
  std::error_code error;
  const fs::path root = fs::canonical(*policy.allowed_media_dir, error);
  if (error) throw ApiError(500, "the server's allowed media folder cannot be opened: " + error.message());
  // The folder as configured, which may differ from `root` when the operator named it through a link.
  fs::path configured = normal_form(fs::absolute(*policy.allowed_media_dir, error));
  if (error) configured = root;
  const fs::path candidate = normal_form(requested.is_absolute() ? requested : root / requested);
  const std::string outside = what + ": the file is outside the allowed media folder";
  // Lexically first, so a path that is plainly elsewhere (`../x`, /etc/...) is refused without
  // touching the file system (its existence stays unknown to the client)...
  if (!is_within(candidate, root) && !is_within(candidate, configured)) throw ApiError(400, outside, param);
  // ...then where it really leads, symbolic links followed.
  const fs::path resolved = fs::canonical(candidate, error);
  if (error) {
    if (error == std::errc::no_such_file_or_directory) throw ApiError(400, what + ": no such file", param);
    throw ApiError(400, what + ": cannot open the file (" + error.message() + ")", param);
  }
  if (!is_within(resolved, root)) throw ApiError(400, outside, param);
  if (!fs::is_regular_file(resolved, error)) throw ApiError(400, what + ": not a regular file", param);
  return resolved;
}

// Replaces every occurrence of `server_path` in a decoder's message with `shown`.
std::string without_server_path(std::string message, const std::string& server_path, const std::string& shown) {
  if (server_path.empty()) return message;
  for (std::size_t at = message.find(server_path); at != std::string::npos;
       at = message.find(server_path, at + shown.size())) {
    message.replace(at, server_path.size(), shown);
  }
  return message;
}

Media decode_local(bool video, const fs::path& file, const std::string& url, const MediaPolicy& policy,
                   const std::string& param) {
  try {
    if (video) {
      VideoClip clip = VideoClip::from_file(file);
      clip.source = param;
      return clip;
    }
    RgbImage image = decode_image_file(file, policy.image_limits);
    image.source = param;
    return image;
  } catch (const Error& error) {
    const std::string shown = param + " (" + quoted_excerpt(url, 200) + ")";
    throw ApiError(400, message_excerpt(without_server_path(error.what(), file.string(), shown), 1000), param);
  }
}

Media decode_data_url(bool video, const std::string& url, const MediaPolicy& policy, RequestScratch& scratch,
                      const std::string& param) {
  if (video) {
    const DataUrl data = parse_data_url(url, policy.max_video_bytes, param);
    if (data.bytes.empty()) throw ApiError(400, param + ": the video data URL is empty", param);
    const fs::path file = write_scratch_file(policy.scratch_dir, data.bytes, video_extension(data.media_type), scratch);
    try {
      VideoClip clip = VideoClip::from_file(file);
      clip.source = param;
      return clip;
    } catch (const Error&) {
      throw ApiError(500, param + ": the video's scratch file vanished", param);
    }
  }
  const auto max_bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(policy.image_limits.max_file_bytes, 0));
  const DataUrl data = parse_data_url(url, max_bytes, param);
  try {
    RgbImage image = decode_image_memory(data.bytes, param, policy.image_limits);
    image.source = param;
    return image;
  } catch (const Error& error) {
    throw ApiError(400, message_excerpt(error.what(), 1000), param);  // the decoder's message starts with `param`
  }
}

}  // namespace

std::optional<std::vector<std::uint8_t>> decode_base64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::vector<std::uint8_t> out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t at = 0; at < text.size(); at += 4) {
    const bool last = at + 4 == text.size();
    // Padding only ends the last group: "xx==" (one byte) or "xxx=" (two).
    const std::size_t padding = !last ? 0 : text[at + 2] == '=' ? 2 : text[at + 3] == '=' ? 1 : 0;
    if (padding == 2 && text[at + 3] != '=') return std::nullopt;
    std::uint32_t group = 0;
    for (std::size_t i = 0; i < 4 - padding; ++i) {
      const int value = base64_value(text[at + i]);
      if (value < 0) return std::nullopt;
      group = (group << 6) | static_cast<std::uint32_t>(value);
    }
    group <<= 6 * padding;
    // The bits a padded group leaves unused must be zero: one encoding per byte string.
    if ((padding == 1 && (group & 0xFF) != 0) || (padding == 2 && (group & 0xFFFF) != 0)) return std::nullopt;
    out.push_back(static_cast<std::uint8_t>(group >> 16));
    if (padding < 2) out.push_back(static_cast<std::uint8_t>(group >> 8));
    if (padding < 1) out.push_back(static_cast<std::uint8_t>(group));
  }
  return out;
}

DataUrl parse_data_url(std::string_view url, std::uint64_t max_bytes, const std::string& param) {
  if (!starts_with_nocase(url, "data:")) throw ApiError(400, param + ": not a data: URL", param);
  const std::size_t comma = url.find(',');
  if (comma == std::string_view::npos) {
    throw ApiError(400, param + ": malformed data URL (no ',' before the data)", param);
  }
  // data:[<mediatype>][;<parameter>=<value>]*[;base64],<data>  (RFC 2397)
  const std::string_view header = url.substr(5, comma - 5);
  const std::size_t last_semicolon = header.rfind(';');
  if (last_semicolon == std::string_view::npos || ascii_lower(header.substr(last_semicolon + 1)) != "base64") {
    throw ApiError(400, param + ": only base64 data URLs are supported (data:<type>;base64,<data>)", param);
  }
  DataUrl out;
  out.media_type = ascii_lower(header.substr(0, header.find(';')));
  const std::string_view payload = url.substr(comma + 1);
  // The decoded size follows from the length: refuse an oversized payload before decoding it.
  std::uint64_t decoded_bytes = payload.size() / 4 * 3;
  const std::uint64_t padding = payload.ends_with("==") ? 2 : payload.ends_with("=") ? 1 : 0;
  decoded_bytes -= std::min(padding, decoded_bytes);  // "==" alone is invalid, not -2 bytes
  if (decoded_bytes > max_bytes) {
    throw ApiError(400, param + ": the data URL holds " + std::to_string(decoded_bytes) + " bytes, more than this server's limit of " +
                            std::to_string(max_bytes),
                   param);
  }
  std::optional<std::vector<std::uint8_t>> bytes = decode_base64(payload);
  if (!bytes) {
    throw ApiError(400, param + ": the data URL's data is not valid base64 (RFC 4648: the A-Z a-z 0-9 + / alphabet, '=' padding "
                                "to a multiple of 4 characters, no whitespace)",
                   param);
  }
  out.bytes = std::move(*bytes);
  return out;
}

RequestScratch::~RequestScratch() {
  for (const fs::path& file : files_) {
    std::error_code ignored;
    fs::remove(file, ignored);
  }
}

Media resolve_media(bool video, const std::string& url, const MediaPolicy& policy, RequestScratch& scratch,
                    const std::string& param) {
  const std::string scheme = url_scheme(url);
  const std::string kind = video ? "video" : "image";
  if (scheme == "data") return decode_data_url(video, url, policy, scratch, param);
  if (scheme == "http" || scheme == "https") {
    throw ApiError(400,
                   param + ": q3vl does not fetch remote URLs; send the " + kind +
                       " as a data: URL (base64) or a file under --allowed-media-dir",
                   param);
  }
  if (url.find('\0') != std::string::npos) throw ApiError(400, param + ": the path holds a NUL character", param);
  if (scheme == "file") {
    // file:///abs/path or file://localhost/abs/path (RFC 8089); the path is percent-encoded.
    const std::string_view rest = std::string_view(url).substr(5);
    if (!rest.starts_with("//")) {
      throw ApiError(400, param + ": a file URL must be file:///path or file://localhost/path", param);
    }
    const std::size_t path_start = rest.find('/', 2);
    const std::string_view host = rest.substr(2, path_start == std::string_view::npos ? std::string_view::npos : path_start - 2);
    if (path_start == std::string_view::npos || (!host.empty() && ascii_lower(host) != "localhost")) {
      throw ApiError(400, param + ": a file URL must be file:///path or file://localhost/path (no other host)", param);
    }
    const std::optional<std::string> path = percent_decode(rest.substr(path_start));
    if (!path) throw ApiError(400, param + ": malformed percent escape in the file URL", param);
    if (path->find('\0') != std::string::npos) throw ApiError(400, param + ": the path holds a NUL character", param);
    return decode_local(video, resolve_local_file(*path, url, policy, param), url, policy, param);
  }
  if (!scheme.empty()) {
    throw ApiError(400,
                   param + ": unsupported URL scheme " + quoted_excerpt(scheme) +
                       " (q3vl takes data: URLs, file:// URLs and paths under --allowed-media-dir)",
                   param);
  }
  return decode_local(video, resolve_local_file(url, url, policy, param), url, policy, param);
}

}  // namespace q3vl::server
