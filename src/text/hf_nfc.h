#pragma once
// NFC as Hugging Face's tokenizers computes it (internal to the tokenizer): utf8proc's NFC, except
// that characters HF's Unicode 9 tables do not know stay inert, and run only on the stretches of
// text where it can change something.
#include <string>
#include <string_view>

namespace q3vl::tokenizer_internal {

// The NFC form of `text`: `text` itself when nothing in it can change, else a view of `storage`.
std::string_view hf_nfc(std::string_view text, std::string& storage);

}  // namespace q3vl::tokenizer_internal
