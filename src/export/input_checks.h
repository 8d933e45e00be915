#pragma once
// Everything besides the weights that `build` reads from a checkpoint folder (tokenizer.json,
// tokenizer_config.json, the chat template, generation_config.json, preprocessor_config.json) and,
// for `build --only`, the package it adds to: checked before an export writes anything, and by
// `inspect`, so a broken file is named up front instead of after a full export or at `run` time.
#include <filesystem>
#include <string>
#include <vector>

#include "export/package_writer.h"
#include "model/checkpoint.h"

namespace q3vl {

// Checks the checkpoint's non-weight files; `tokenizer_dir` (may be empty) is where the tokenizer
// files come from when the checkpoint has none, as in build. The tokenizer is loaded with q3vl's
// tokenizer and must hold the special tokens the config names with the config's ids
// (<|image_pad|>, <|video_pad|>, <|vision_start|>, <|vision_end|>, plus <|im_start|> and <|im_end|>
// for the chat format), no ids past text_config.vocab_size, and every eos id of the generation
// config. Throws InvalidInput naming the file and field. Returns notes for things that are accepted
// but unusual (an MRoPE section HF clips, no tokenizer when `require_tokenizer` is false).
std::vector<std::string> check_checkpoint_files(const Checkpoint& checkpoint, const std::filesystem::path& tokenizer_dir,
                                                bool require_tokenizer);

// What build_package checks before writing: the files above, and when adding parts to an existing
// package (`--only`), that the package's manifest is readable and that it was built from the same
// model: the same parsed config.json (every architecture field, RoPE settings, special token ids;
// weights may differ, as in a fine-tune). Throws InvalidInput.
void check_build_inputs(const Checkpoint& checkpoint, const std::filesystem::path& out, const PackageOptions& options);

}  // namespace q3vl
