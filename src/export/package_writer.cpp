#include "export/package_writer.h"


#include <nlohmann/json.hpp>

#include "export/input_checks.h"
#include "package/format.h"
#include "package/manifest.h"
#include "model/checkpoint.h"
#include "model/generation_config.h"
#include "model/preprocessor_config.h"
#include "model/tokenizer_files.h"
#include "model/tensor_names.h"
#include "q3vl/error.h"
#include "util/files.h"
#include "util/json_fields.h"
#include "util/output_dir.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json genai_config(const ModelConfig& c, const GenerationConfig& generation, const PackageOptions& o) {
  const TextConfig& t = c.text;
  const json session = {{"log_id", "onnxruntime-genai"}, {"provider_options", json::array()}};
  return {
      {"model",
       {{"type", "qwen3_vl"},
        {"bos_token_id", generation.bos_token_id},
        {"eos_token_id", generation.eos_token_ids},
        {"pad_token_id", generation.pad_token_id},
        {"image_token_id", c.image_token_id},
        {"video_token_id", c.video_token_id},
        {"vision_start_token_id", c.vision_start_token_id},
        {"vocab_size", t.vocab_size},
        {"context_length", t.max_position_embeddings},
        {"decoder",
         {{"filename", package::kTextModel},
          {"session_options", session},
          // The wide channel: DeepStack travels in columns H.. of image_features/inputs_embeds.
          {"hidden_size", package::visual_channel_width(c)},
          {"head_size", t.head_dim},
          {"num_attention_heads", t.num_attention_heads},
          {"num_key_value_heads", t.num_key_value_heads},
          {"num_hidden_layers", t.num_hidden_layers},
          {"inputs",
           {{"inputs_embeds", package::kInputsEmbeds},
            {"attention_mask", package::kAttentionMask},
            {"position_ids", package::kPositionIds},
            {"past_key_names", package::kPastKeyPattern},
            {"past_value_names", package::kPastValuePattern}}},
          {"outputs",
           {{"logits", package::kLogits},
            {"present_key_names", package::kPresentKeyPattern},
            {"present_value_names", package::kPresentValuePattern}}}}},
        {"embedding",
         {{"filename", package::kEmbeddingModel},
          {"session_options", session},
          {"inputs", {{"input_ids", package::kInputIds}, {"image_features", package::kImageFeatures}}},
          {"outputs", {{"inputs_embeds", package::kInputsEmbeds}}}}},
        {"vision",
         {{"filename", package::kVisionModel},
          {"config_filename", package::kProcessorConfig},
          {"session_options", session},
          {"spatial_merge_size", c.vision.spatial_merge_size},
          {"tokens_per_second", 2.0},
          {"patch_size", c.vision.patch_size},
          {"inputs", {{"pixel_values", package::kPixelValues}, {"image_grid_thw", package::kImageGridThw}}},
          {"outputs", {{"image_features", package::kImageFeatures}}}}}}},
      {"search",
       {{"max_length", std::min(o.max_length, t.max_position_embeddings)},
        {"min_length", 0},
        {"do_sample", generation.do_sample},
        {"num_beams", 1},
        {"num_return_sequences", 1},
        {"past_present_share_buffer", true},
        {"temperature", generation.temperature},
        {"top_k", generation.top_k},
        {"top_p", generation.top_p},
        {"repetition_penalty", generation.repetition_penalty},
        {"length_penalty", 1.0},
        {"diversity_penalty", 0.0},
        {"no_repeat_ngram_size", 0},
        {"early_stopping", true}}},
  };
}

json processor_config(const ModelConfig& c, const PreprocessOptions& preprocess) {
  const json mean = preprocess.mean;
  const json std_dev = preprocess.std;
  auto op = [](const char* name, const char* type, json attrs) {
    json operation = {{"name", name}, {"type", type}};
    if (!attrs.is_null()) operation["attrs"] = std::move(attrs);
    return json{{"operation", operation}};
  };
  return {{"processor",
           {{"name", "qwen3_vl_image_processor"},
            {"transforms",
             {op("decode_image", "DecodeImage", {{"color_space", "RGB"}}), op("convert_to_rgb", "ConvertRGB", nullptr),
              op("resize", "Resize",
                 {{"width", 540}, {"height", 360}, {"smart_resize", 1}, {"min_pixels", preprocess.min_pixels},
                  {"max_pixels", preprocess.max_pixels}, {"patch_size", c.vision.patch_size},
                  {"merge_size", c.vision.spatial_merge_size}}),
              op("rescale", "Rescale", {{"rescale_factor", preprocess.rescale_factor}}),
              op("normalize", "Normalize", {{"mean", mean}, {"std", std_dev}, {"qwen3_vl", 1}}),
              op("patch_image", "PatchImage",
                 {{"patch_size", c.vision.patch_size}, {"temporal_patch_size", c.vision.temporal_patch_size},
                  {"merge_size", c.vision.spatial_merge_size}})}}}}};
}

json part_record(PackagePart part, const PackageOptions& o) {
  auto linear = [](const LinearOptions& l) {
    return json{{"weights", to_string(l.format)}, {"block_size", l.block_size}, {"symmetric", l.symmetric},
                {"accuracy_level", l.accuracy_level}};
  };
  switch (part) {
    case PackagePart::Vision:
      return {{"file", package::part_file(part)}, {"linear", linear(o.vision.linear)}, {"fp16", o.vision.fp16}};
    case PackagePart::Embedding:
      return {{"file", package::part_file(part)}, {"table", linear(o.embedding)}, {"fp16", o.embedding_fp16}};
    case PackagePart::Text:
      return {{"file", package::part_file(part)}, {"linear", linear(o.text.linear)}, {"lm_head", linear(o.text.lm_head)},
              {"all_logits", o.text.all_logits}, {"fp16", o.text.fp16}};
  }
  return {};
}

void export_part(const Checkpoint& ckpt, PackagePart part, const PackageOptions& o, const fs::path& dir,
                 ProgressBar& progress) {
  switch (part) {
    case PackagePart::Vision: export_vision(ckpt, o.vision, dir, &progress); break;
    case PackagePart::Embedding: export_embedding(ckpt, dir, o.embedding, o.embedding_fp16, &progress); break;
    case PackagePart::Text: export_text(ckpt, o.text, dir, &progress); break;
  }
}

// Checkpoint bytes the export reads, for the progress bar: each part's tensors once (the
// embedding table twice when lm_head is tied to it).
std::uint64_t bytes_to_export(const Checkpoint& ckpt, const std::set<PackagePart>& parts) {
  std::uint64_t total = 0;
  for (const std::string& name : ckpt.tensor_names()) {
    const bool vision = name.rfind("model.visual.", 0) == 0;
    const bool embedding = name == names::kEmbedTokens;
    const PackagePart part = vision ? PackagePart::Vision : embedding ? PackagePart::Embedding : PackagePart::Text;
    if (parts.count(part) != 0) total += ckpt.tensor(name).bytes.size();
  }
  if (parts.count(PackagePart::Text) != 0 && !ckpt.has(names::kLmHead)) total += ckpt.tensor(names::kLmHead).bytes.size();
  return total;
}

void write_configs(const Checkpoint& ckpt, const PackageOptions& o, const fs::path& dir, json manifest) {
  const fs::path& src = ckpt.dir();
  // Each the file its flag names, else the checkpoint's (check_build_inputs refused a checkpoint
  // without one: no other model's file is ever substituted).
  const fs::path video_path = require_build_input(src, o, BuildInput::VideoPreprocessorConfig);
  const json generation = read_json_bounded(require_build_input(src, o, BuildInput::GenerationConfig));
  const json preprocessor = read_json_bounded(require_build_input(src, o, BuildInput::PreprocessorConfig));
  const json video_preprocessor = read_json_bounded(video_path);
  read_video_preprocess_options(JsonField(video_preprocessor, video_path.string()));
  // The checkpoint's tokenizer, else --tokenizer-dir's; the chat template is --chat-template's,
  // else the checkpoint's (never --tokenizer-dir's).
  const fs::path tokenizer_source = fs::exists(src / "tokenizer.json") || o.tokenizer_dir.empty() ? src : o.tokenizer_dir;
  write_tokenizer_files(tokenizer_source, read_chat_template(require_build_input(src, o, BuildInput::ChatTemplate)), dir);
  write_json_file(dir / package::kGenaiConfig,
                  genai_config(ckpt.config(), parse_generation_config(generation, ckpt.config()), o));
  write_json_file(dir / package::kProcessorConfig,
                  processor_config(ckpt.config(), read_preprocess_options(preprocessor)));
  set_manifest_header(manifest, read_json_file(src / "config.json"), generation, preprocessor, video_preprocessor, ckpt.config());
  write_json_file(dir / package::kManifest, manifest);  // last: its presence marks a complete package
}

}  // namespace

void build_package(const fs::path& checkpoint_dir, const fs::path& out, const PackageOptions& o) {
  OutputDir out_dir(out, {.kind = "package",
                          .option = "--out",
                          .replace = o.overwrite,
                          .inputs = {{checkpoint_dir, "the checkpoint (--model)"},
                                     {o.tokenizer_dir, "the tokenizer folder (--tokenizer-dir)"},
                                     {o.chat_template, "the chat template (--chat-template)"},
                                     {o.generation_config, "the generation config (--generation-config)"},
                                     {o.preprocessor_config, "the preprocessor config (--preprocessor-config)"},
                                     {o.video_preprocessor_config,
                                      "the video preprocessor config (--video-preprocessor-config)"}}});
  const fs::path& dest = out_dir.path();
  // Some parts into an existing package: an update of that package. Otherwise a new package.
  const bool update = o.parts.size() < 3 && fs::exists(dest / package::kManifest);
  if (o.parts.size() < 3 && !update && read_owned_marker(dest).kind == "package") {
    throw InvalidInput(dest.string() + " is an unfinished package (no " + package::kManifest +
                       ": an earlier update was interrupted); rebuild it whole with --force");
  }
  const WriteMode mode = update ? WriteMode::Update : WriteMode::Replace;
  out_dir.check(mode);  // before the long work; checked again under the lock
  // Every tensor is checked before anything is written.
  const Checkpoint ckpt = Checkpoint::open(checkpoint_dir);
  check_build_inputs(ckpt, out, o);  // tokenizer, configs, template; the package --only adds to
  if (o.parts.count(PackagePart::Text) != 0) check_text_export_supported(ckpt.config(), o.text);
  if (!fs::exists(checkpoint_dir / "tokenizer.json") && !fs::exists(o.tokenizer_dir / "tokenizer.json")) {
    throw InvalidInput(checkpoint_dir.string() + ": no tokenizer.json (the package needs the tokenizer; pass --tokenizer-dir)");
  }
  // Everything is written into the locked staging folder first; the package changes only at the end.
  const fs::path& stage = out_dir.begin(mode);
  json manifest = update ? read_json_file(dest / package::kManifest) : json::object();
  ProgressBar progress("exporting", bytes_to_export(ckpt, o.parts), o.show_progress);
  for (PackagePart part : o.parts) {
    export_part(ckpt, part, o, stage, progress);
    manifest["parts"][to_string(part)] = part_record(part, o);
  }
  progress.finish();
  write_configs(ckpt, o, stage, manifest);
  if (!update) {
    out_dir.commit();  // atomic: OUT is the old package or the new one, never a mix
    return;
  }
  // An update cannot be one atomic rename: the new files replace the old ones one by one. The
  // manifest is what says "this folder is a complete package" (the runtime refuses a folder
  // without it), so it is removed first and written last: interrupted in between, the package
  // does not claim parts that are half replaced; it is refused until rebuilt with --force.
  out_dir.merge_into(package::kManifest);
}

}  // namespace q3vl
