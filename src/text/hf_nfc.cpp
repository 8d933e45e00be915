#include "text/hf_nfc.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <memory>

#include <utf8proc.h>

#include "q3vl/error.h"
#include "text/utf8.h"

namespace q3vl::tokenizer_internal {
namespace {

using utf8::CodePointRange;

struct FreeDeleter {
  void operator()(void* pointer) const { std::free(pointer); }
};

// Text whose code points are all below U+0300 (UTF-8 lead bytes below 0xCC) is already NFC: no
// character there has a decomposition that changes, and nothing follows that could combine.
bool may_change_under_nfc(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0xCC; });
}

// Characters HF's NFC does not know: its tables are Unicode 9 while utf8proc's are newer, so
// these combining marks (and the few new letters with compositions) would be reordered or composed
// by utf8proc but not by HF. To HF they are plain starters that never combine, so they are copied
// through and the text on each side normalized on its own, which gives what HF gives. Probed on
// every code point by tools/golden/gen_tokenizer_fixtures.py (hf_unicode.json lists them, and the
// encode fixtures put each one where a newer NFC would act).
constexpr std::array<CodePointRange, 57> kUnknownToHfNfc = {{
    {0x7FD, 0x7FD},     {0x897, 0x89F},     {0x8CA, 0x8D3},     {0x9FE, 0x9FE},     {0xC3C, 0xC3C},
    {0xD3B, 0xD3C},     {0xEBA, 0xEBA},     {0x1715, 0x1715},   {0x1ABF, 0x1ACE},   {0x1DF6, 0x1DFA},
    {0xA82C, 0xA82C},   {0x105C9, 0x105C9}, {0x105D2, 0x105D2}, {0x105DA, 0x105DA}, {0x105E4, 0x105E4},
    {0x10D24, 0x10D27}, {0x10D69, 0x10D6D}, {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50},
    {0x10F82, 0x10F85}, {0x11070, 0x11070}, {0x1133B, 0x1133B}, {0x11382, 0x11385}, {0x1138B, 0x1138B},
    {0x1138E, 0x1138E}, {0x11390, 0x11391}, {0x113C2, 0x113C2}, {0x113C5, 0x113C5}, {0x113C7, 0x113C8},
    {0x113CE, 0x113D0}, {0x1145E, 0x1145E}, {0x11839, 0x1183A}, {0x11935, 0x11935}, {0x11938, 0x11938},
    {0x1193D, 0x1193E}, {0x11943, 0x11943}, {0x119E0, 0x119E0}, {0x11A34, 0x11A34}, {0x11A47, 0x11A47},
    {0x11A99, 0x11A99}, {0x11D42, 0x11D42}, {0x11D44, 0x11D45}, {0x11D97, 0x11D97}, {0x11F41, 0x11F42},
    {0x1611E, 0x1611E}, {0x16121, 0x16129}, {0x1612F, 0x1612F}, {0x16D63, 0x16D63}, {0x16D67, 0x16D6A},
    {0x16FF0, 0x16FF1}, {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF},
    {0x1E4EC, 0x1E4EF}, {0x1E5EE, 0x1E5EF},
}};
constexpr std::uint32_t kFirstUnknownToHfNfc = 0x7FD;  // UTF-8 DF BD: lead bytes below 0xDF are all older
constexpr unsigned char kFirstUnknownToHfNfcLead = 0xDF;

bool unknown_to_hf_nfc(std::uint32_t code_point) {
  return code_point >= kFirstUnknownToHfNfc && utf8::in_ranges(kUnknownToHfNfc, code_point);
}

// Characters that are their own NFC, have combining class 0 and never compose with what precedes
// them (NFC_Quick_Check=Yes starters): NFC never looks across the boundary before one, so text
// made of them is copied and only the stretches around the others go through utf8proc. Just the
// common scripts; checked against Unicode 16 (no combining class, no change, never the second
// half of a composition). Everything below U+0300 is such a character too.
constexpr std::array<CodePointRange, 9> kNfcStableRanges = {{
    {0x400, 0x482},    // Cyrillic (U+0483..0489 are combining)
    {0x48A, 0x4FF},    //
    {0x3000, 0x3029},  // CJK symbols and punctuation (U+302A.. are combining)
    {0x3041, 0x3096},  // hiragana (the voicing marks U+3099/309A are combining)
    {0x30A1, 0x30FA},  // katakana
    {0x3400, 0x4DBF},  // CJK ideographs, extension A
    {0x4E00, 0x9FFF},  // CJK ideographs
    {0xAC00, 0xD7A3},  // Hangul syllables (a trailing jamo after one is not stable, so it is handled)
    {0xFF01, 0xFFEF},  // half- and fullwidth forms (compatibility decompositions only)
}};

// Whether the character at text[pos] is NFC-stable (see above); sets its byte length.
bool is_nfc_stable_at(std::string_view text, std::size_t pos, std::size_t& length) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  if (lead < 0x80) {
    length = 1;
    return true;
  }
  length = utf8::next_sequence(text, pos).length;  // the text is valid UTF-8
  if (lead < 0xCC) return true;                    // below U+0300
  const std::uint32_t code_point = utf8::decode_code_point(text, pos, length);
  return std::any_of(kNfcStableRanges.begin(), kNfcStableRanges.end(), [code_point](const auto& range) {
    return code_point >= range.first && code_point <= range.second;
  });
}

// Appends the NFC form of `text` (utf8proc) to `out`.
void append_nfc(std::string_view text, std::string& out) {
  if (!may_change_under_nfc(text)) {
    out.append(text);
    return;
  }
  utf8proc_uint8_t* output = nullptr;
  const utf8proc_ssize_t length =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &output, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  const std::unique_ptr<utf8proc_uint8_t, FreeDeleter> owned(output);
  if (length < 0) throw Error(std::string("NFC normalization failed: ") + utf8proc_errmsg(length));
  out.append(reinterpret_cast<const char*>(output), static_cast<std::size_t>(length));
}

// Appends NFC as HF computes it: utf8proc's, except that characters HF's tables lack stay inert.
void append_hf_nfc(std::string_view text, std::string& out) {
  std::size_t piece_start = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < kFirstUnknownToHfNfcLead) {
      ++pos;  // an older character, or a continuation byte of one
      continue;
    }
    const std::size_t length = utf8::next_sequence(text, pos).length;
    if (unknown_to_hf_nfc(utf8::decode_code_point(text, pos, length))) {
      append_nfc(text.substr(piece_start, pos - piece_start), out);
      out.append(text.substr(pos, length));
      piece_start = pos + length;
    }
    pos += length;
  }
  append_nfc(text.substr(piece_start), out);
}

}  // namespace

std::string_view hf_nfc(std::string_view text, std::string& storage) {
  if (!may_change_under_nfc(text)) return text;
  storage.clear();
  std::size_t copied = 0;         // text[0, copied) is in storage
  std::size_t last_boundary = 0;  // where the latest stable character starts
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t length = 1;
    if (is_nfc_stable_at(text, pos, length)) {
      last_boundary = pos;
      pos += length;
      continue;
    }
    // Something NFC may change: normalize from the last stable character up to the next one.
    std::size_t end = pos + length;
    while (end < text.size() && !is_nfc_stable_at(text, end, length)) end += length;
    storage.append(text.substr(copied, last_boundary - copied));
    append_hf_nfc(text.substr(last_boundary, end - last_boundary), storage);
    copied = last_boundary = pos = end;
  }
  storage.append(text.substr(copied));
  return storage;
}

}  // namespace q3vl::tokenizer_internal
