#pragma once
// Everything besides the weights that `build` reads from a checkpoint folder (tokenizer.json,
// tokenizer_config.json, the chat template, generation_config.json, preprocessor_config.json,
// video_preprocessor_config.json, or the files given in their place on the command line) and,
// for `build --only`, the package it adds to: checked before an export writes anything, and by
// `inspect`, so a broken file is named up front instead of after a full export or at `run` time.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "export/package_writer.h"
#include "model/checkpoint.h"

namespace q3vl {

// Where build takes each file it needs besides the weights and the tokenizer: the file named by
// its flag in `options`, else the checkpoint's. For the chat template the checkpoint's are tried in
// HF's order: chat_template.jinja, chat_template.json, then tokenizer_config.json's "chat_template"
// (the checkpoint's own: never --tokenizer-dir's, whose template may be another model's).
// nullopt when there is none; q3vl substitutes no other model's file.
enum class BuildInput { ChatTemplate, GenerationConfig, PreprocessorConfig, VideoPreprocessorConfig };
std::optional<std::filesystem::path> find_build_input(const std::filesystem::path& checkpoint_dir,
                                                      const PackageOptions& options, BuildInput input);
// The same, or InvalidInput naming the missing file and the flag that gives it.
std::filesystem::path require_build_input(const std::filesystem::path& checkpoint_dir, const PackageOptions& options,
                                          BuildInput input);
// The template a chat template file holds: a .json file (chat_template.json, tokenizer_config.json)
// is read as JSON and must have a "chat_template" string; any other file is the template text.
// Bounded (1 MiB) and only from a regular file. Throws InvalidInput naming the file.
std::string read_chat_template(const std::filesystem::path& file);

// Checks the checkpoint's non-weight files; `options.tokenizer_dir` (may be empty) is where the
// tokenizer files come from when the checkpoint has none, and the file flags replace the
// checkpoint's files, as in build. The tokenizer is loaded with q3vl's
// tokenizer and must hold the special tokens the config names with the config's ids
// (<|image_pad|>, <|video_pad|>, <|vision_start|>, <|vision_end|>, plus <|im_start|> and <|im_end|>
// for the chat format), no ids past text_config.vocab_size, and every eos id of the generation
// config. Throws InvalidInput naming the file and field. A missing file (tokenizer, chat template,
// generation / preprocessor / video preprocessor config) throws when `require_all` (build) and is
// a note otherwise (inspect). Returns notes for things that are accepted but unusual (an MRoPE
// section HF clips) and those missing files.
std::vector<std::string> check_checkpoint_files(const Checkpoint& checkpoint, const PackageOptions& options,
                                                bool require_all);

// What build_package checks before writing: the files above, and when adding parts to an existing
// package (`--only`), that the package's manifest is readable and that it was built from the same
// model: the same parsed config.json (every architecture field, RoPE settings, special token ids;
// weights may differ, as in a fine-tune). Throws InvalidInput.
void check_build_inputs(const Checkpoint& checkpoint, const std::filesystem::path& out, const PackageOptions& options);

}  // namespace q3vl
