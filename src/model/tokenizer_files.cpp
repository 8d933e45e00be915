#include "model/tokenizer_files.h"

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "util/assets.h"
#include "util/files.h"

namespace q3vl {

namespace fs = std::filesystem;

std::string reference_chat_template() {
  return nlohmann::json::parse(assets::get("chat_template.json")).at("chat_template").get<std::string>();
}

void write_tokenizer_files(const fs::path& source_dir, const std::string& chat_template, const fs::path& out,
                           const nlohmann::json& extra) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    if (!fs::exists(source_dir / name)) {
      throw InvalidInput(source_dir.string() + ": " + name +
                         " is missing (run scripts/setup.sh for the Qwen tokenizer, or pass --tokenizer-dir)");
    }
  }
  fs::copy_file(source_dir / "tokenizer.json", out / "tokenizer.json", fs::copy_options::overwrite_existing);
  nlohmann::json config = read_json_file(source_dir / "tokenizer_config.json");
  config["chat_template"] = chat_template;
  config.update(extra);
  write_json_file(out / "tokenizer_config.json", config);
}

}  // namespace q3vl
