// Media references -> images and clips: strict base64, data: URLs, the scratch files of video data
// URLs, and local files confined to the allowed folder (traversal, symbolic links, prefix tricks).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/media_source.h"
#include "support/test_support.h"
#include "util/files.h"

namespace q3vl::server {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
bool lacks(const std::string& text, const std::string& part) { return !contains(text, part); }

namespace fs = std::filesystem;

// The test's own encoder (RFC 4648 with padding), independent of the decoder under test.
std::string base64(std::string_view bytes) {
  static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t at = 0; at < bytes.size(); at += 3) {
    const std::size_t n = std::min<std::size_t>(3, bytes.size() - at);
    std::uint32_t group = 0;
    for (std::size_t i = 0; i < 3; ++i) group = (group << 8) | (i < n ? static_cast<unsigned char>(bytes[at + i]) : 0u);
    for (std::size_t i = 0; i < 4; ++i) out += i <= n ? kAlphabet[(group >> (18 - 6 * i)) & 63] : '=';
  }
  return out;
}

std::vector<std::uint8_t> bytes_of(std::string_view text) { return {text.begin(), text.end()}; }

fs::path fixture_png() { return test::golden_dir() / "cases" / "full_two_turn" / "image0.png"; }

void expect_error(const std::function<void()>& call, int status, const std::string& param, const std::string& phrase) {
  try {
    call();
    ADD_FAILURE() << "no error (expected: " << phrase << ")";
  } catch (const ApiError& error) {
    EXPECT_EQ(error.status(), status) << error.what();
    EXPECT_EQ(error.param(), param) << error.what();
    EXPECT_PRED2(contains, error.what(), phrase);
    EXPECT_NO_THROW((void)nlohmann::json(error.what()).dump());
  } catch (const std::exception& error) {
    ADD_FAILURE() << "not an ApiError: " << error.what();
  }
}

// The message an ApiError carries ("" and a failure when there is none).
std::string error_message(const std::function<void()>& call) {
  try {
    call();
  } catch (const ApiError& error) {
    return error.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(ServerBase64, DecodesRfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"", ""}, {"Zg==", "f"}, {"Zm8=", "fo"}, {"Zm9v", "foo"}, {"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"}, {"Zm9vYmFy", "foobar"},
      {"+/+/", "\xFB\xFF\xBF"}};
  for (const auto& [encoded, decoded] : vectors) {
    const auto bytes = decode_base64(encoded);
    ASSERT_TRUE(bytes) << encoded;
    EXPECT_EQ(*bytes, bytes_of(decoded)) << encoded;
  }
}

TEST(ServerBase64, RoundTripsEveryByteValue) {
  std::string all;
  for (int value = 0; value < 256; ++value) all += static_cast<char>(value);
  for (std::size_t length = 0; length <= 5; ++length) {
    const std::string piece = all.substr(250 - length);
    EXPECT_EQ(decode_base64(base64(piece)), bytes_of(piece)) << length;
  }
  EXPECT_EQ(decode_base64(base64(all)), bytes_of(all));
}

TEST(ServerBase64, RefusesAnythingNotStrict) {
  for (const std::string& bad : std::vector<std::string>{"Zg", "Zg=", "Zm9", "Z", "Z===", "====", "Zg=a", "=Zg=", "Zg==Zg==", "Zm9v\n", "Zm 9v",
                                " Zm9v", "Zm9v ", "Zm-_", "Zm9v_w==", "Zh==", "Zm9=", "Zg==\r\n", "Zm9v====",
                                std::string("Zm\0v", 4), "Zm9v\xC3\xA9"}) {
    EXPECT_FALSE(decode_base64(bad)) << bad;
  }
}

TEST(ServerDataUrl, SplitsTypeAndDecodes) {
  const DataUrl url = parse_data_url("data:image/png;base64,Zm9v", 100, "p");
  EXPECT_EQ(url.media_type, "image/png");
  EXPECT_EQ(url.bytes, bytes_of("foo"));
  const DataUrl upper = parse_data_url("DATA:Image/PNG;BASE64,Zm9v", 100, "p");
  EXPECT_EQ(upper.media_type, "image/png");
  EXPECT_EQ(upper.bytes, bytes_of("foo"));
  EXPECT_EQ(parse_data_url("data:;base64,Zm9v", 100, "p").media_type, "");
  EXPECT_EQ(parse_data_url("data:image/jpeg;name=a.jpg;base64,Zm9v", 100, "p").media_type, "image/jpeg");
  EXPECT_EQ(parse_data_url("data:image/png;base64,Zm9v", 3, "p").bytes.size(), 3u);  // exactly the limit
  EXPECT_TRUE(parse_data_url("data:image/png;base64,", 3, "p").bytes.empty());
}

TEST(ServerDataUrl, RefusesMalformedUrls) {
  const std::string param = "messages[0].content[1].image_url.url";
  expect_error([&] { parse_data_url("data:text/plain,hello", 100, param); }, 400, param, "only base64 data URLs are supported");
  expect_error([&] { parse_data_url("data:image/png;charset=base64,Zm9v", 100, param); }, 400, param, "only base64");
  expect_error([&] { parse_data_url("data:image/png;base64", 100, param); }, 400, param, "no ','");
  expect_error([&] { parse_data_url("image/png;base64,Zm9v", 100, param); }, 400, param, "not a data: URL");
  expect_error([&] { parse_data_url("dat:a,b", 100, param); }, 400, param, "not a data: URL");
  expect_error([&] { parse_data_url("data:image/png;base64,Zm9v!", 100, param); }, 400, param, "not valid base64");
  expect_error([&] { parse_data_url("data:image/png;base64,Zh==", 100, param); }, 400, param, "not valid base64");
  expect_error([&] { parse_data_url("data:image/png;base64,Zm9vY", 100, param); }, 400, param, "not valid base64");
  expect_error([&] { parse_data_url("data:image/png;base64,Zm9v Zm9v", 100, param); }, 400, param, "not valid base64");
  expect_error([&] { parse_data_url("data:image/png;base64,Zm9v", 2, param); }, 400, param, "more than this server's limit of 2");
  expect_error([&] { parse_data_url("data:image/png;base64,==", 2, param); }, 400, param, "not valid base64");
  expect_error([&] { parse_data_url("data:image/png;base64,=", 0, param); }, 400, param, "not valid base64");
  EXPECT_EQ(parse_data_url("data:image/png;base64,Zm8=", 2, param).bytes, bytes_of("fo"));  // padding counted exactly
}

TEST(ServerDataUrl, OversizedPayloadIsRefusedBeforeDecoding) {
  // 4 MB of characters outside the alphabet: the size check answers first, from the length alone.
  const std::string url = "data:image/png;base64," + std::string(4 << 20, '!');
  expect_error([&] { parse_data_url(url, 1 << 20, "p"); }, 400, "p", "3145728 bytes, more than this server's limit of 1048576");
}

class ServerResolveMedia : public testing::Test {
 protected:
  ServerResolveMedia() {
    fs::create_directories(allowed_);
    fs::create_directories(scratch_);
    fs::copy_file(fixture_png(), allowed_ / "cat.png");
    fs::copy_file(fixture_png(), dir_ / "secret.png");
    policy_.allowed_media_dir = allowed_;
    policy_.scratch_dir = scratch_;
  }

  Media resolve(const std::string& url, bool video = false) { return resolve_media(video, url, policy_, scratch_files_, kParam); }
  void expect_refused(const std::string& url, const std::string& phrase, bool video = false) {
    SCOPED_TRACE(url);
    expect_error([&] { resolve(url, video); }, 400, kParam, phrase);
    // A refusal names the part, and shows no server path outside the allowed folder.
    const std::string message = error_message([&] { resolve(url, video); });
    EXPECT_PRED2(contains, message, kParam);
    if (url.find(dir_.string()) == std::string::npos) {
      EXPECT_PRED2(lacks, message, dir_.string());
    }
  }
  void expect_cat(const std::string& url) {
    SCOPED_TRACE(url);
    const Media media = resolve(url);
    ASSERT_TRUE(std::holds_alternative<RgbImage>(media));
    const RgbImage& image = std::get<RgbImage>(media);
    EXPECT_EQ(image.width, reference_.width);
    EXPECT_EQ(image.height, reference_.height);
    EXPECT_EQ(image.pixels, reference_.pixels);
    EXPECT_EQ(image.source, kParam);
  }

  const std::string kParam = "messages[0].content[1].image_url.url";
  test::TempDir temp_;
  fs::path dir_ = temp_.path();
  fs::path allowed_ = dir_ / "media";
  fs::path scratch_ = dir_ / "scratch";
  MediaPolicy policy_;
  RequestScratch scratch_files_;
  RgbImage reference_ = decode_image_file(fixture_png());
};

TEST_F(ServerResolveMedia, PngDataUrlDecodes) {
  expect_cat("data:image/png;base64," + base64(read_text_file(fixture_png())));
  expect_cat("data:;base64," + base64(read_text_file(fixture_png())));  // the content decides the format
}

TEST_F(ServerResolveMedia, BadImageDataUrls) {
  expect_refused("data:image/png;base64," + base64("hello, not an image"), "not a JPEG, PNG, WebP, BMP or GIF");
  expect_refused("data:image/png;base64,", "empty");
  const std::string png = read_text_file(fixture_png());
  expect_refused("data:image/png;base64," + base64(png.substr(0, png.size() / 2)), kParam);  // truncated
  expect_refused("data:image/png;base64," + base64(png).substr(1), "not valid base64");
  expect_refused("data:image/png," + png.substr(0, 8), "only base64");
  policy_.image_limits.max_file_bytes = 100;
  expect_refused("data:image/png;base64," + base64(png), "more than this server's limit of 100");
  policy_.image_limits = {};
  policy_.image_limits.max_pixels = 16;
  expect_refused("data:image/png;base64," + base64(png), kParam);
}

TEST_F(ServerResolveMedia, RemoteAndUnknownSchemesAreRefused) {
  for (const std::string url : {"http://example.com/a.png", "https://example.com/a.png", "HTTPS://EXAMPLE.COM/A.PNG", "hTtP://x"}) {
    expect_refused(url, "q3vl does not fetch remote URLs; send the image as a data: URL (base64) or a file under --allowed-media-dir");
  }
  expect_refused("https://example.com/a.mp4", "send the video as a data: URL", /*video=*/true);
  expect_refused("ftp://example.com/a.png", "unsupported URL scheme 'ftp'");
  expect_refused("javascript:alert(1)", "unsupported URL scheme 'javascript'");
  expect_refused("blob:abc", "unsupported URL scheme");
}

TEST_F(ServerResolveMedia, VideoDataUrlGoesToScratchAndIsRemoved) {
  const std::string clip_bytes = std::string("\x00\x00\x00\x18" "ftypmp42", 12) + std::string(1000, '\x7F');
  fs::path written;
  fs::path second;
  write_text_file(scratch_ / "not-ours.mp4", "other");
  {
    RequestScratch scratch;
    const Media media = resolve_media(true, "data:video/mp4;base64," + base64(clip_bytes), policy_, scratch, kParam);
    ASSERT_TRUE(std::holds_alternative<VideoClip>(media));
    const VideoClip& clip = std::get<VideoClip>(media);
    written = clip.file;
    EXPECT_EQ(clip.source, kParam);
    EXPECT_EQ(written.parent_path(), scratch_);
    EXPECT_EQ(written.extension(), ".mp4");
    EXPECT_EQ(read_text_file(written), clip_bytes);
    struct stat info {};
    ASSERT_EQ(::stat(written.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    second = std::get<VideoClip>(resolve_media(true, "data:;base64," + base64(clip_bytes), policy_, scratch, kParam)).file;
    EXPECT_NE(second, written);  // each clip its own file
    EXPECT_TRUE(fs::exists(second));
  }
  EXPECT_FALSE(fs::exists(written));
  EXPECT_FALSE(fs::exists(second));
  EXPECT_TRUE(fs::exists(scratch_ / "not-ours.mp4"));  // only its own files
}

TEST_F(ServerResolveMedia, VideoDataUrlLimitsAndScratchErrors) {
  policy_.max_video_bytes = 10;
  expect_refused("data:video/mp4;base64," + base64(std::string(11, 'v')), "limit of 10", /*video=*/true);
  expect_refused("data:video/mp4;base64,", "empty", /*video=*/true);
  policy_.max_video_bytes = 1 << 20;
  policy_.scratch_dir = dir_ / "missing-scratch";
  expect_error([&] { resolve("data:video/mp4;base64," + base64("clip"), true); }, 500, "", "cannot create a scratch file");
  policy_.scratch_dir.clear();
  expect_error([&] { resolve("data:video/mp4;base64," + base64("clip"), true); }, 500, "", "no scratch folder");
  EXPECT_TRUE(fs::is_empty(scratch_));
}

TEST_F(ServerResolveMedia, LocalFilesUnderTheAllowedFolder) {
  expect_cat("cat.png");
  expect_cat("./cat.png");
  expect_cat((allowed_ / "cat.png").string());
  expect_cat("file://" + (allowed_ / "cat.png").string());
  expect_cat("file://localhost" + (allowed_ / "cat.png").string());
  expect_cat("FILE://LOCALHOST" + (allowed_ / "cat.png").string());
  expect_cat("file://" + (allowed_ / "c%61t.png").string());  // percent-encoded
  fs::create_directories(allowed_ / "sub");
  expect_cat("sub/../cat.png");
  fs::create_symlink(allowed_ / "cat.png", allowed_ / "sub" / "link.png");  // a link that stays inside is fine
  expect_cat("sub/link.png");
}

TEST_F(ServerResolveMedia, LocalFilesNeedAnAllowedFolder) {
  policy_.allowed_media_dir.reset();
  expect_refused("cat.png", "local files need --allowed-media-dir");
  expect_refused("file://" + (allowed_ / "cat.png").string(), "local files need --allowed-media-dir");
}

TEST_F(ServerResolveMedia, TraversalIsRefused) {
  const std::string outside = "outside the allowed media folder";
  expect_refused("../secret.png", outside);
  expect_refused("sub/../../secret.png", outside);
  expect_refused("../../../../../../etc/passwd", outside);
  expect_refused((dir_ / "secret.png").string(), outside);
  expect_refused("/etc/passwd", outside);
  expect_refused("file://" + (dir_ / "secret.png").string(), outside);
  expect_refused("file://" + allowed_.string() + "/%2e%2e/secret.png", outside);
  expect_refused("file://" + allowed_.string() + "/%2E%2E%2Fsecret.png", outside);
  expect_refused("%2e%2e/secret.png", "no such file");  // a plain path is not percent-decoded
  fs::create_symlink(dir_ / "secret.png", allowed_ / "escape.png");
  expect_refused("escape.png", outside);
  expect_refused("file://" + (allowed_ / "escape.png").string(), outside);
  fs::create_symlink(dir_, allowed_ / "up");
  expect_refused("up/secret.png", outside);
  // A file whose existence is probed outside the folder gets the same answer as one that exists.
  expect_refused("../does-not-exist.png", outside);
}

TEST_F(ServerResolveMedia, SiblingFolderWithTheSamePrefixIsOutside) {
  fs::create_directories(dir_ / "media2");
  fs::copy_file(fixture_png(), dir_ / "media2" / "cat.png");
  const std::string outside = "outside the allowed media folder";
  expect_refused((dir_ / "media2" / "cat.png").string(), outside);
  expect_refused("file://" + (dir_ / "media2" / "cat.png").string(), outside);
  expect_refused("../media2/cat.png", outside);
  policy_.allowed_media_dir = allowed_.string() + "/";  // a trailing separator changes nothing
  expect_refused((dir_ / "media2" / "cat.png").string(), outside);
  expect_cat("cat.png");
}

TEST_F(ServerResolveMedia, AllowedFolderReachedThroughALink) {
  fs::create_directory_symlink(allowed_, dir_ / "media-link");
  policy_.allowed_media_dir = dir_ / "media-link";
  expect_cat("cat.png");
  expect_cat((dir_ / "media-link" / "cat.png").string());
  expect_cat((allowed_ / "cat.png").string());
  expect_refused((dir_ / "media-link" / ".." / "secret.png").string(), "outside the allowed media folder");
}

TEST_F(ServerResolveMedia, WhatIsNotAReadableImageFile) {
  fs::create_directories(allowed_ / "folder");
  expect_refused("folder", "not a regular file");
  expect_refused("file://" + (allowed_ / "folder").string(), "not a regular file");
  expect_refused("", "not a regular file");  // the folder itself
  expect_refused("missing.png", "no such file");
  expect_refused("missing/cat.png", "no such file");
  write_text_file(allowed_ / "broken.png", "not really a png");
  const std::string message = error_message([&] { resolve("broken.png"); });
  EXPECT_PRED2(contains, message, kParam + " ('broken.png')");
  EXPECT_PRED2(contains, message, "not a JPEG, PNG");
  EXPECT_PRED2(lacks, message, dir_.string());  // no server path, not even the allowed folder's
  expect_refused(std::string("cat.png\0.txt", 12), "NUL");
  expect_refused("file://" + allowed_.string() + "/cat.png%00", "NUL");
  expect_refused("file://" + allowed_.string() + "/cat%zz.png", "malformed percent escape");
  expect_refused("file://" + allowed_.string() + "/cat.png%2", "malformed percent escape");
  expect_refused("file://evil.example.com" + (allowed_ / "cat.png").string(), "no other host");
  expect_refused("file:cat.png", "file:///path");
  expect_refused("file:/" + (allowed_ / "cat.png").string(), "file:///path");
  expect_refused("file://", "no other host");
}

TEST_F(ServerResolveMedia, LocalVideoFile) {
  write_text_file(allowed_ / "clip.mp4", "clip bytes");
  const Media media = resolve("clip.mp4", /*video=*/true);
  ASSERT_TRUE(std::holds_alternative<VideoClip>(media));
  EXPECT_EQ(std::get<VideoClip>(media).file, fs::canonical(allowed_ / "clip.mp4"));
  EXPECT_EQ(std::get<VideoClip>(media).source, kParam);
  expect_refused("../secret.png", "outside the allowed media folder", /*video=*/true);
  expect_refused("nothing.mp4", "no such file", /*video=*/true);
  EXPECT_TRUE(fs::is_empty(scratch_));  // local files are never copied
}

}  // namespace
}  // namespace q3vl::server
