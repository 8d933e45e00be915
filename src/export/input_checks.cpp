#include "export/input_checks.h"

#include <nlohmann/json.hpp>

#include "package/format.h"
#include "math/mrope.h"
#include "model/generation_config.h"
#include "model/preprocessor_config.h"
#include "model/tokenizer_files.h"
#include "q3vl/error.h"
#include "package/package.h"
#include "text/tokenizer.h"
#include "util/files.h"
#include "util/json_fields.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::uint64_t kMaxTemplateBytes = 1u << 20;

// A FIFO or a device named like a config file would block or never end a read.
void require_regular_file(const fs::path& path) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) throw InvalidInput(path.string() + ": not a regular file");
}

std::string join(const std::vector<std::int64_t>& values) {
  std::string out;
  for (std::int64_t v : values) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

struct InputFile {
  const char* name;  // what the checkpoint would hold
  const char* flag;  // what gives it instead
  fs::path PackageOptions::*option;
};

const InputFile& input_file(BuildInput input) {
  static const InputFile files[] = {
      {"chat template", "--chat-template", &PackageOptions::chat_template},
      {"generation_config.json", "--generation-config", &PackageOptions::generation_config},
      {"preprocessor_config.json", "--preprocessor-config", &PackageOptions::preprocessor_config},
      {"video_preprocessor_config.json", "--video-preprocessor-config", &PackageOptions::video_preprocessor_config},
  };
  return files[static_cast<int>(input)];
}

std::string missing_message(const fs::path& dir, BuildInput input) {
  const InputFile& file = input_file(input);
  const std::string what = input == BuildInput::ChatTemplate
                               ? "no chat template (chat_template.jinja, chat_template.json or a \"chat_template\" in "
                                 "tokenizer_config.json)"
                               : std::string("no ") + file.name;
  return dir.string() + ": " + what + "; pass one with " + file.flag + " FILE (build uses no other model's)";
}

// The file build reads for `input`; when there is none, InvalidInput for build (`require_all`),
// a note for inspect.
std::optional<fs::path> input_or_note(const fs::path& dir, const PackageOptions& options, BuildInput input,
                                      bool require_all, std::vector<std::string>& notes) {
  if (auto file = find_build_input(dir, options, input)) return file;
  if (require_all) throw InvalidInput(missing_message(dir, input));
  notes.push_back(missing_message(dir, input));
  return std::nullopt;
}

GenerationConfig check_generation_config(const Checkpoint& ckpt, const std::optional<fs::path>& path) {
  if (!path) return parse_generation_config(json::object(), ckpt.config());  // inspect without one: the config's ids
  const json file = read_json_bounded(*path);
  return parse_generation_config(JsonField(file, path->string()), ckpt.config());
}

void check_preprocessor_config(const Checkpoint& ckpt, const fs::path& path) {
  const json file = read_json_bounded(path);
  const JsonField root(file, path.string());
  read_preprocess_options(root);
  // HF's processor cuts patches with these, the model embeds them with config.json's: they must agree.
  const VisionConfig& v = ckpt.config().vision;
  for (const auto& [key, expected, config_field] :
       {std::tuple{"patch_size", v.patch_size, "patch_size"},
        std::tuple{"temporal_patch_size", v.temporal_patch_size, "temporal_patch_size"},
        std::tuple{"merge_size", v.spatial_merge_size, "spatial_merge_size"}}) {
    if (const auto field = root.find(key); field && field->integer() != expected) {
      field->fail(std::to_string(field->integer()) + " differs from config.json vision_config." + config_field + " = " +
                  std::to_string(expected));
    }
  }
}

void check_video_preprocessor_config(const fs::path& path) {
  const json file = read_json_bounded(path);
  read_video_preprocess_options(JsonField(file, path.string()));
}

void check_chat_template(const fs::path& path) {
  if (read_chat_template(path).find("<|image_pad|>") == std::string::npos) {
    throw InvalidInput(path.string() + ": the chat template never writes <|image_pad|>, so images could not "
                       "reach the model (not a Qwen3-VL template)");
  }
}

Tokenizer load_tokenizer(const fs::path& path) {
  try {
    return Tokenizer::load(path);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw InvalidInput(path.string() + ": cannot be read as a tokenizer (" + e.what() + ")");
  }
}

void check_tokenizer(const fs::path& dir, const ModelConfig& config, const GenerationConfig& generation) {
  const fs::path tokenizer_path = dir / "tokenizer.json";
  const fs::path tokenizer_config_path = dir / "tokenizer_config.json";
  if (!fs::exists(tokenizer_config_path)) {
    throw InvalidInput(dir.string() + ": tokenizer_config.json is missing (it goes with tokenizer.json)");
  }
  require_regular_file(tokenizer_path);
  const Tokenizer tokenizer = load_tokenizer(tokenizer_path);
  const std::string where = tokenizer_path.string() + ": ";
  for (const auto& [token, id, field] : {std::tuple{"<|image_pad|>", config.image_token_id, "image_token_id"},
                                         std::tuple{"<|video_pad|>", config.video_token_id, "video_token_id"},
                                         std::tuple{"<|vision_start|>", config.vision_start_token_id, "vision_start_token_id"},
                                         std::tuple{"<|vision_end|>", config.vision_end_token_id, "vision_end_token_id"}}) {
    const auto found = tokenizer.token_id(token);
    if (!found) {
      throw InvalidInput(where + "has no token " + token + " (config.json " + field + " is " + std::to_string(id) + ")");
    }
    if (*found != id) {
      throw InvalidInput(where + "token " + token + " has id " + std::to_string(*found) + " but config.json " + field +
                         " is " + std::to_string(id));
    }
  }
  for (const char* token : {"<|im_start|>", "<|im_end|>"}) {
    if (!tokenizer.token_id(token)) throw InvalidInput(where + "has no token " + token + " (the chat format needs it)");
  }
  if (tokenizer.vocab_size() > config.text.vocab_size) {
    throw InvalidInput(where + std::to_string(tokenizer.vocab_size()) + " tokens, more than config.json " +
                       "text_config.vocab_size = " + std::to_string(config.text.vocab_size) +
                       " (ids past it would index outside the embedding table)");
  }
  for (const std::int64_t eos : generation.eos_token_ids) {
    const std::vector<std::int64_t> ids = {eos};
    if (tokenizer.decode(ids).empty()) {
      throw InvalidInput(where + "has no token with id " + std::to_string(eos) + ", an eos_token_id of the generation config");
    }
  }
  const json tokenizer_config = read_json_bounded(tokenizer_config_path);
  const JsonField root(tokenizer_config, tokenizer_config_path.string());
  root.require_object();
  for (const char* key : {"eos_token", "bos_token", "pad_token", "unk_token"}) {
    const auto field = root.find(key);
    if (!field) continue;
    // A token is a string or an AddedToken object {"content": ...}.
    const std::string content = field->value().is_object() ? field->at("content").string() : field->string();
    if (!tokenizer.token_id(content)) field->fail("\"" + content + "\" is not a token of " + tokenizer_path.string());
  }
}

}  // namespace

std::optional<fs::path> find_build_input(const fs::path& dir, const PackageOptions& options, BuildInput input) {
  const InputFile& file = input_file(input);
  if (const fs::path& given = options.*file.option; !given.empty()) {
    std::error_code error;
    if (!fs::exists(given, error)) throw InvalidInput(given.string() + " (" + file.flag + "): no such file");
    return given;
  }
  if (input != BuildInput::ChatTemplate) {
    if (fs::exists(dir / file.name)) return dir / file.name;
    return std::nullopt;
  }
  // HF's order: the processor's chat_template.jinja, then its chat_template.json, then the tokenizer's.
  for (const char* name : {"chat_template.jinja", "chat_template.json"}) {
    if (fs::exists(dir / name)) return dir / name;
  }
  const fs::path tokenizer_config = dir / "tokenizer_config.json";
  if (fs::exists(tokenizer_config)) {
    const json config = read_json_bounded(tokenizer_config);
    if (config.is_object() && config.contains("chat_template")) return tokenizer_config;
  }
  return std::nullopt;
}

fs::path require_build_input(const fs::path& dir, const PackageOptions& options, BuildInput input) {
  if (auto file = find_build_input(dir, options, input)) return *file;
  throw InvalidInput(missing_message(dir, input));
}

std::string read_chat_template(const fs::path& path) {
  require_regular_file(path);
  std::string text;
  if (path.extension() == ".json") {
    const json file = read_json_bounded(path);
    if (!file.is_object() || !file.contains("chat_template") || !file["chat_template"].is_string()) {
      throw InvalidInput(path.string() + ": no \"chat_template\" string");
    }
    text = file["chat_template"].get<std::string>();
  } else {
    if (fs::file_size(path) > kMaxTemplateBytes) {
      throw InvalidInput(path.string() + ": " + std::to_string(fs::file_size(path)) + " bytes is too large for a chat template");
    }
    text = read_text_file(path);
  }
  if (text.size() > kMaxTemplateBytes) {
    throw InvalidInput(path.string() + ": a " + std::to_string(text.size()) + "-byte chat template is too large");
  }
  return text;
}

std::vector<std::string> check_checkpoint_files(const Checkpoint& ckpt, const PackageOptions& options, bool require_all) {
  std::vector<std::string> notes;
  const TextConfig& t = ckpt.config().text;
  for (const std::string& note : mrope::layout_notes(t.mrope_section, t.head_dim)) {
    notes.push_back((ckpt.dir() / "config.json").string() + ": mrope_section [" + join(t.mrope_section) + "]: " + note);
  }
  const fs::path& src = ckpt.dir();
  const GenerationConfig generation =
      check_generation_config(ckpt, input_or_note(src, options, BuildInput::GenerationConfig, require_all, notes));
  if (const auto path = input_or_note(src, options, BuildInput::PreprocessorConfig, require_all, notes)) {
    check_preprocessor_config(ckpt, *path);
  }
  if (const auto path = input_or_note(src, options, BuildInput::VideoPreprocessorConfig, require_all, notes)) {
    check_video_preprocessor_config(*path);
  }
  if (const auto path = input_or_note(src, options, BuildInput::ChatTemplate, require_all, notes)) check_chat_template(*path);
  // As the package writer: the checkpoint's tokenizer, else --tokenizer-dir's.
  const fs::path& tokenizer_dir = options.tokenizer_dir;
  const fs::path dir = fs::exists(src / "tokenizer.json") || tokenizer_dir.empty() ? src : tokenizer_dir;
  if (!fs::exists(dir / "tokenizer.json")) {
    const std::string missing = src.string() + ": no tokenizer.json (the package needs the tokenizer; pass --tokenizer-dir)";
    if (require_all) throw InvalidInput(missing);
    notes.push_back(missing);
    return notes;
  }
  check_tokenizer(dir, ckpt.config(), generation);
  return notes;
}

void check_build_inputs(const Checkpoint& ckpt, const fs::path& out, const PackageOptions& options) {
  check_checkpoint_files(ckpt, options, true);
  if (options.parts.size() == 3 || !fs::exists(out / package::kManifest)) return;
  const PackageManifest manifest = read_package_manifest(out);
  const json differences = json::diff(to_config_json(manifest.config), to_config_json(ckpt.config()));
  if (differences.empty()) return;
  std::string fields;
  const json package_config = to_config_json(manifest.config);
  const json checkpoint_config = to_config_json(ckpt.config());
  for (std::size_t i = 0; i < differences.size() && i < 4; ++i) {
    const json::json_pointer pointer(differences[i]["path"].get<std::string>());
    std::string name = pointer.to_string().substr(1);
    for (char& c : name) c = c == '/' ? '.' : c;
    fields += (fields.empty() ? "" : ", ") + name + " (" +
              (package_config.contains(pointer) ? package_config[pointer].dump() : std::string("absent")) + " in the package, " +
              (checkpoint_config.contains(pointer) ? checkpoint_config[pointer].dump() : std::string("absent")) +
              " in the checkpoint)";
  }
  throw InvalidInput(out.string() + " was built from a different model than " + ckpt.dir().string() +
                     ": config.json differs in " + fields + (differences.size() > 4 ? ", ..." : "") +
                     ". Parts of one package must come from the same architecture; build all parts into a new folder");
}

}  // namespace q3vl
