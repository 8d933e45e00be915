#pragma once
// `q3vl build`: a Hugging Face checkpoint -> a package folder that both q3vl and stock
// onnxruntime-genai 0.15.2 run: vision.onnx, embedding.onnx, text.onnx (weights in .data files),
// genai_config.json, processor_config.json, tokenizer files, and q3vl_package.json (our manifest:
// the model config, preprocessing, generation defaults and the build options).
#include <filesystem>
#include <set>
#include <string>

#include "package/format.h"

#include "export/text_export.h"
#include "export/vision_export.h"

namespace q3vl {

struct PackageOptions {
  std::set<PackagePart> parts = {PackagePart::Vision, PackagePart::Embedding, PackagePart::Text};
  VisionExportOptions vision;
  LinearOptions embedding;  // the token embedding table
  bool embedding_fp16 = false;  // a float table stored in float16
  TextExportOptions text;
  // Where tokenizer.json / tokenizer_config.json come from when the checkpoint has none.
  std::filesystem::path tokenizer_dir;
  // Files named on the command line (--chat-template, --generation-config, --preprocessor-config,
  // --video-preprocessor-config). One given replaces the checkpoint's file of that kind; one not
  // given is the checkpoint's, and build refuses a checkpoint that has none (never a default).
  std::filesystem::path chat_template;  // a .json file's "chat_template" string, else the template text
  std::filesystem::path generation_config;
  std::filesystem::path preprocessor_config;
  std::filesystem::path video_preprocessor_config;
  std::int64_t max_length = 8192;  // genai search.max_length: KV buffers are allocated at this length
  bool overwrite = false;  // --force: an existing q3vl package at OUT may be replaced
  bool show_progress = true;
};


// Builds the package (see util/output_dir.h for what may be written and replaced). All parts:
// written to the locked staging folder OUT.partial and swapped into place only when complete.
// Some parts into an existing q3vl package: staged the same way, then moved in, manifest last.
void build_package(const std::filesystem::path& checkpoint_dir, const std::filesystem::path& out,
                   const PackageOptions& options);

}  // namespace q3vl
