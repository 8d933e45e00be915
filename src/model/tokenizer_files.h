#pragma once
// The tokenizer files that travel with a model: tokenizer.json as is, and tokenizer_config.json
// with the Qwen3-VL chat template (runtimes read the template from there; the npm Qwen tokenizer
// carries the text-only Qwen3 one). Used by make-tiny and by the package writer.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace q3vl {

// The Qwen3-VL-4B-Instruct chat template (embedded), for make-tiny's checkpoints only: `build`
// takes the checkpoint's template or --chat-template's (export/input_checks.h), never this one.
std::string reference_chat_template();

// Copies `source_dir`'s tokenizer.json into `out` and writes its tokenizer_config.json with
// `chat_template` (and any `extra` keys). Throws InvalidInput naming the folder if either file is
// missing.
void write_tokenizer_files(const std::filesystem::path& source_dir, const std::string& chat_template,
                           const std::filesystem::path& out, const nlohmann::json& extra = nlohmann::json::object());

}  // namespace q3vl
