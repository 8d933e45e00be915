#pragma once
// SHA-256 (OpenSSL's libcrypto), for content identity: an image or video the KV cache already
// holds is recognised by the digest of its pixels or bytes. A cryptographic hash because the
// content comes from users who could otherwise craft a collision with someone else's cached image.
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace q3vl {

using Sha256Digest = std::array<std::uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& update(std::span<const std::uint8_t> bytes);
  Sha256& update(std::string_view text);
  // A number in a fixed width and byte order, so digests do not depend on the platform.
  Sha256& update_int(std::int64_t value);
  // A whole file's bytes, read in blocks; throws InvalidInput naming it if it cannot be read.
  Sha256& update_file(const std::filesystem::path& file);
  Sha256Digest finish();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

// Lower-case hexadecimal, as stamps record digests.
std::string to_hex(const Sha256Digest& digest);

}  // namespace q3vl
