#include "text/utf8.h"

#include "q3vl/error.h"

namespace q3vl::utf8 {

std::size_t append_lossy(std::string_view bytes, bool final, std::string& out) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    std::size_t ascii_end = pos;
    while (ascii_end < bytes.size() && static_cast<unsigned char>(bytes[ascii_end]) < 0x80) ++ascii_end;
    out.append(bytes.substr(pos, ascii_end - pos));
    pos = ascii_end;
    if (pos == bytes.size()) break;
    const Sequence sequence = next_sequence(bytes, pos);
    if (sequence.status == Status::kValid) {
      out.append(bytes.substr(pos, sequence.length));
    } else if (sequence.status == Status::kTruncated && !final) {
      return pos;  // the next token may complete it
    } else {
      out.append(kReplacementCharacter);
    }
    pos += sequence.length;
  }
  return bytes.size();
}

void check_valid(std::string_view text, std::string_view what) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Sequence sequence = next_sequence(text, pos);
    if (sequence.status != Status::kValid) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      const auto byte = static_cast<unsigned char>(text[pos]);
      throw InvalidInput(std::string(what) + " is not valid UTF-8: " +
                         std::string(sequence.status == Status::kTruncated ? "truncated" : "bad") +
                         " sequence at byte offset " + std::to_string(pos) + " (0x" + kHex[byte >> 4] +
                         kHex[byte & 15] + ")");
    }
    pos += sequence.length;
  }
}

bool code_points(std::string_view text, std::vector<std::uint32_t>& out) {
  out.clear();
  std::size_t pos = 0;
  while (pos < text.size()) {
    const Sequence sequence = next_sequence(text, pos);
    if (sequence.status != Status::kValid) return false;
    out.push_back(decode_code_point(text, pos, sequence.length));
    pos += sequence.length;
  }
  return true;
}

}  // namespace q3vl::utf8
