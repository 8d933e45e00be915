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
#include "util/assets.h"
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

// The checkpoint's file, else q3vl's default (what the package writer uses).
json config_file_or_default(const fs::path& path, std::string& source) {
  if (fs::exists(path)) {
    source = path.string();
    return read_json_bounded(path);
  }
  source = path.filename().string() + " (q3vl's default: the checkpoint has none)";
  return json::parse(assets::get(path.filename().string()));
}

GenerationConfig check_generation_config(const Checkpoint& ckpt) {
  std::string source;
  const json file = config_file_or_default(ckpt.dir() / "generation_config.json", source);
  return parse_generation_config(JsonField(file, source), ckpt.config());
}

void check_preprocessor_config(const Checkpoint& ckpt) {
  std::string source;
  const json file = config_file_or_default(ckpt.dir() / "preprocessor_config.json", source);
  const JsonField root(file, source);
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

void check_chat_template(const fs::path& dir) {
  for (const char* name : {"chat_template.jinja", "chat_template.json"}) {
    const fs::path path = dir / name;
    if (!fs::exists(path)) continue;
    require_regular_file(path);
    if (fs::file_size(path) > kMaxTemplateBytes) {
      throw InvalidInput(path.string() + ": " + std::to_string(fs::file_size(path)) + " bytes is too large for a chat template");
    }
  }
  if (fs::exists(dir / "chat_template.json")) read_json_bounded(dir / "chat_template.json");  // depth and syntax
  const std::string chat_template = checkpoint_chat_template(dir);
  if (chat_template.find("<|image_pad|>") == std::string::npos) {
    const std::string file = fs::exists(dir / "chat_template.jinja") ? "chat_template.jinja" : "chat_template.json";
    throw InvalidInput((dir / file).string() + ": the chat template never writes <|image_pad|>, so images could not "
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

std::vector<std::string> check_checkpoint_files(const Checkpoint& ckpt, const fs::path& tokenizer_dir, bool require_tokenizer) {
  std::vector<std::string> notes;
  const TextConfig& t = ckpt.config().text;
  for (const std::string& note : mrope::layout_notes(t.mrope_section, t.head_dim)) {
    notes.push_back((ckpt.dir() / "config.json").string() + ": mrope_section [" + join(t.mrope_section) + "]: " + note);
  }
  const GenerationConfig generation = check_generation_config(ckpt);
  check_preprocessor_config(ckpt);
  check_chat_template(ckpt.dir());
  // As the package writer: the checkpoint's tokenizer, else --tokenizer-dir's.
  const fs::path& src = ckpt.dir();
  const fs::path dir = fs::exists(src / "tokenizer.json") || tokenizer_dir.empty() ? src : tokenizer_dir;
  if (!fs::exists(dir / "tokenizer.json")) {
    const std::string missing = src.string() + ": no tokenizer.json (the package needs the tokenizer; pass --tokenizer-dir)";
    if (require_tokenizer) throw InvalidInput(missing);
    notes.push_back(missing);
    return notes;
  }
  check_tokenizer(dir, ckpt.config(), generation);
  return notes;
}

void check_build_inputs(const Checkpoint& ckpt, const fs::path& out, const PackageOptions& options) {
  check_checkpoint_files(ckpt, options.tokenizer_dir, true);
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
