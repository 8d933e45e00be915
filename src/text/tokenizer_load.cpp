// Tokenizer::load: reads a Hugging Face tokenizer.json, accepting only what this implementation
// reproduces exactly (byte-level BPE with the Qwen2/Qwen3 pipeline), and builds its tables.
#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "q3vl/error.h"
#include "text/tokenizer.h"
#include "text/tokenizer_impl.h"
#include "util/json_fields.h"

namespace q3vl {
namespace {

using nlohmann::json;
using tokenizer_internal::AddedTokenMatcher;
using tokenizer_internal::ByteLevelAlphabet;
using tokenizer_internal::MergeRule;
using tokenizer_internal::SplitRegex;
using tokenizer_internal::TokenInfo;
using tokenizer_internal::TokenizerImpl;

[[noreturn]] void bad(const std::filesystem::path& file, const std::string& what) {
  throw InvalidInput(file.string() + ": " + what);
}

const json& require(const json& object, const char* key, const std::filesystem::path& file, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end()) bad(file, where + " has no \"" + key + "\"");
  return *it;
}

// A flag that must be absent, null, false or an empty string for this implementation.
void require_unset(const json& object, const char* key, const std::filesystem::path& file, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return;
  if ((it->is_boolean() && !it->get<bool>()) || (it->is_string() && it->get<std::string>().empty())) return;
  bad(file, "unsupported tokenizer: " + where + "." + key + " = " + it->dump());
}

// An optional member of a known JSON type: absent gives `fallback`; any other type, null included
// (HF's Rust deserializer refuses it too), is an error naming the field.
bool flag(const json& object, const char* key, bool fallback, const std::filesystem::path& file, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end()) return fallback;
  if (!it->is_boolean()) bad(file, where + "." + key + " is " + json_type_name(*it) + ", expected a boolean");
  return it->get<bool>();
}

std::string text(const json& object, const char* key, const std::filesystem::path& file, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end()) return "";
  if (!it->is_string()) bad(file, where + "." + key + " is " + json_type_name(*it) + ", expected a string");
  return it->get<std::string>();
}

std::string json_string(const json& value, const std::filesystem::path& file, const std::string& where) {
  if (!value.is_string()) bad(file, where + " is not a string");
  return value.get<std::string>();
}

json read_tokenizer_json(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) bad(file, "cannot open the tokenizer file");
  std::ostringstream content;
  content << in.rdbuf();
  json root;
  try {
    root = json::parse(content.view());
  } catch (const json::exception& e) {
    bad(file, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!root.is_object()) bad(file, "not a JSON object");
  return root;
}

// The model: byte-level BPE with nothing else switched on.
const json& read_bpe_model(const json& root, const std::filesystem::path& file) {
  const json& model = require(root, "model", file, "the tokenizer");
  if (!model.is_object() || text(model, "type", file, "model") != "BPE") {
    bad(file, "unsupported tokenizer model " + (model.is_object() ? text(model, "type", file, "model") : model.dump()) +
                  " (only BPE)");
  }
  for (const char* key : {"dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "byte_fallback",
                          "ignore_merges"}) {
    require_unset(model, key, file, "model");
  }
  return model;
}

struct VocabEntry {
  std::string text;
  std::int64_t id;
};

std::vector<VocabEntry> read_vocab(const json& model, const std::filesystem::path& file) {
  const json& vocab = require(model, "vocab", file, "model");
  if (!vocab.is_object()) bad(file, "model.vocab is not an object");
  std::vector<VocabEntry> entries;
  entries.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0) bad(file, "model.vocab[\"" + token + "\"] is not an id");
    entries.push_back({token, id.get<std::int64_t>()});
  }
  return entries;
}

// The added_tokens list, every entry with a valid id (their other fields are read later).
json read_added_token_list(const json& root, const std::filesystem::path& file) {
  json added = root.contains("added_tokens") ? root["added_tokens"] : json::array();
  if (!added.is_array()) bad(file, "added_tokens is not a list");
  for (const json& entry : added) {
    if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_number_integer() || entry["id"].get<std::int64_t>() < 0) {
      bad(file, "added token " + entry.dump() + " has no valid id");
    }
  }
  return added;
}

std::int64_t largest_token_id(const std::vector<VocabEntry>& vocab, const json& added, const std::filesystem::path& file) {
  std::int64_t max_id = -1;
  for (const VocabEntry& entry : vocab) max_id = std::max(max_id, entry.id);
  for (const json& entry : added) max_id = std::max(max_id, entry["id"].get<std::int64_t>());
  // Ids index a table; a sparse id far beyond any real vocabulary means a broken file.
  constexpr std::int64_t kMaxTokenId = (std::int64_t{1} << 24) - 1;
  if (max_id > kMaxTokenId) bad(file, "token id " + std::to_string(max_id) + " is implausibly large");
  return max_id;
}

void add_vocab_tokens(TokenizerImpl& impl, std::vector<VocabEntry> vocab, const ByteLevelAlphabet& alphabet) {
  std::vector<std::uint32_t> scratch;
  for (VocabEntry& token : vocab) {
    TokenInfo& info = impl.tokens[static_cast<std::size_t>(token.id)];
    info.bytes = alphabet.token_bytes(token.text, scratch);
    info.exists = true;
    impl.id_by_token.insert_or_assign(std::move(token.text), static_cast<std::int32_t>(token.id));
  }
}

// The lowest id that decodes to each single byte: where BPE starts from.
void index_byte_tokens(TokenizerImpl& impl) {
  impl.byte_ids.fill(-1);
  for (std::size_t id = 0; id < impl.tokens.size(); ++id) {
    const TokenInfo& info = impl.tokens[id];
    if (info.exists && info.bytes.size() == 1) {
      std::int32_t& slot = impl.byte_ids[static_cast<unsigned char>(info.bytes[0])];
      if (slot < 0) slot = static_cast<std::int32_t>(id);
    }
  }
}

// One merge, written as "left right" (older files) or as [left, right].
std::pair<std::string, std::string> merge_pair(const json& merge, const std::string& where,
                                               const std::filesystem::path& file) {
  if (merge.is_string()) {
    const std::string text = merge.get<std::string>();
    const std::size_t space = text.find(' ');
    if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
      bad(file, where + " \"" + text + "\" is not two tokens separated by one space");
    }
    return {text.substr(0, space), text.substr(space + 1)};
  }
  if (merge.is_array() && merge.size() == 2) {
    return {json_string(merge[0], file, where + "[0]"), json_string(merge[1], file, where + "[1]")};
  }
  bad(file, where + " is neither \"a b\" nor [a, b]");
}

// A merge's rank is its place in the list; all three tokens must be in the vocabulary.
void read_merges(TokenizerImpl& impl, const json& model, const std::filesystem::path& file) {
  const json& merges = require(model, "merges", file, "model");
  if (!merges.is_array()) bad(file, "model.merges is not a list");
  impl.merges.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string where = "model.merges[" + std::to_string(rank) + "]";
    const auto [left, right] = merge_pair(merges[rank], where, file);
    const auto left_it = impl.id_by_token.find(left);
    const auto right_it = impl.id_by_token.find(right);
    const auto merged_it = impl.id_by_token.find(left + right);
    if (left_it == impl.id_by_token.end() || right_it == impl.id_by_token.end() ||
        merged_it == impl.id_by_token.end()) {
      bad(file, where + " [\"" + left + "\", \"" + right + "\"] uses a token missing from model.vocab");
    }
    impl.merges.insert_or_assign(left_it->second, right_it->second,
                                 MergeRule{static_cast<std::uint32_t>(rank), merged_it->second});
  }
}

// Added tokens override the vocabulary for lookups and decoding, as in HF.
void add_added_tokens(TokenizerImpl& impl, const json& added, const ByteLevelAlphabet& alphabet,
                      const std::filesystem::path& file) {
  std::vector<std::uint32_t> scratch;
  for (const json& entry : added) {
    const std::string content = json_string(require(entry, "content", file, "added token"), file, "added token content");
    const std::string where = "added token \"" + content + "\"";
    for (const char* key : {"single_word", "lstrip", "rstrip"}) require_unset(entry, key, file, where);
    const auto id = static_cast<std::int32_t>(entry["id"].get<std::int64_t>());
    TokenInfo& info = impl.tokens[static_cast<std::size_t>(id)];
    info.bytes = alphabet.token_bytes(content, scratch);  // HF runs added tokens through the decoder too
    info.exists = true;
    info.special = flag(entry, "special", false, file, where);
    impl.id_by_token.insert_or_assign(content, id);
    if (flag(entry, "normalized", false, file, where)) {
      impl.normalized_added_tokens.add(content, id);
    } else {
      impl.raw_added_tokens.add(content, id);
    }
  }
}

// "normalized" added tokens are matched against normalized text, so their content is normalized
// the same way (add_added_tokens has checked every field read here).
void normalize_added_tokens(TokenizerImpl& impl, const json& added) {
  AddedTokenMatcher normalized;
  for (const json& entry : added) {
    if (!entry.value("normalized", false)) continue;
    std::string storage;
    const std::string content = entry["content"].get<std::string>();
    normalized.add(std::string(impl.normalize(content, storage)), static_cast<std::int32_t>(entry["id"].get<std::int64_t>()));
  }
  impl.normalized_added_tokens = std::move(normalized);
}

// Normalizer: NFC or nothing.
void read_normalizer(TokenizerImpl& impl, const json& root, const json& added, const std::filesystem::path& file) {
  const json& normalizer = root.contains("normalizer") ? root["normalizer"] : json();
  if (normalizer.is_object() && text(normalizer, "type", file, "normalizer") == "NFC") {
    impl.nfc = true;
  } else if (!normalizer.is_null()) {
    bad(file, "unsupported normalizer " + normalizer.dump() + " (only NFC)");
  }
  if (impl.nfc && !impl.normalized_added_tokens.empty()) normalize_added_tokens(impl, added);
}

// Pre-tokenizer: Split(regex, Isolated) then ByteLevel without its own regex (Qwen2/Qwen3).
// Returns the Split's (Oniguruma) pattern.
std::string read_split_pattern(const json& root, const std::filesystem::path& file) {
  const json& pre_tokenizer = require(root, "pre_tokenizer", file, "the tokenizer");
  const auto unsupported_pre_tokenizer = [&] {
    bad(file, "unsupported pre_tokenizer " + pre_tokenizer.dump() +
                  " (expected Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)])");
  };
  if (!pre_tokenizer.is_object() || text(pre_tokenizer, "type", file, "pre_tokenizer") != "Sequence") unsupported_pre_tokenizer();
  const json& steps = pre_tokenizer.contains("pretokenizers") ? pre_tokenizer["pretokenizers"] : json();
  if (!steps.is_array() || steps.size() != 2 || !steps[0].is_object() || !steps[1].is_object()) unsupported_pre_tokenizer();
  const json& split = steps[0];
  const json& byte_level = steps[1];
  const std::string split_where = "pre_tokenizer.pretokenizers[0]";
  const std::string byte_level_where = "pre_tokenizer.pretokenizers[1]";
  if (text(split, "type", file, split_where) != "Split" || text(split, "behavior", file, split_where) != "Isolated" ||
      flag(split, "invert", false, file, split_where) ||
      !split.contains("pattern") || !split["pattern"].is_object() || !split["pattern"].contains("Regex") ||
      !split["pattern"]["Regex"].is_string()) {
    unsupported_pre_tokenizer();
  }
  if (text(byte_level, "type", file, byte_level_where) != "ByteLevel" ||
      flag(byte_level, "add_prefix_space", false, file, byte_level_where) ||
      flag(byte_level, "use_regex", true, file, byte_level_where)) {
    unsupported_pre_tokenizer();
  }
  return split["pattern"]["Regex"].get<std::string>();
}

void check_decoder(const json& root, const std::filesystem::path& file) {
  const json& decoder = root.contains("decoder") ? root["decoder"] : json();
  if (!decoder.is_object() || text(decoder, "type", file, "decoder") != "ByteLevel") {
    bad(file, "unsupported decoder " + decoder.dump() + " (only ByteLevel)");
  }
}

}  // namespace

// A file with several problems gets the message of the first step that finds one.
Tokenizer Tokenizer::load(const std::filesystem::path& tokenizer_json) {
  const auto& file = tokenizer_json;
  const json root = read_tokenizer_json(file);
  const json& model = read_bpe_model(root, file);
  std::vector<VocabEntry> vocab = read_vocab(model, file);
  const json added = read_added_token_list(root, file);
  const std::int64_t max_id = largest_token_id(vocab, added, file);

  auto impl = std::make_shared<Impl>();
  const ByteLevelAlphabet alphabet;
  impl->tokens.resize(static_cast<std::size_t>(max_id + 1));
  impl->id_by_token.reserve(vocab.size() + added.size());
  add_vocab_tokens(*impl, std::move(vocab), alphabet);
  index_byte_tokens(*impl);
  read_merges(*impl, model, file);
  add_added_tokens(*impl, added, alphabet, file);
  impl->distinct_tokens = std::count_if(impl->tokens.begin(), impl->tokens.end(),
                                        [](const TokenInfo& info) { return info.exists; });
  read_normalizer(*impl, root, added, file);
  impl->split_regex = SplitRegex::compile(read_split_pattern(root, file), file);
  check_decoder(root, file);
  return Tokenizer(std::move(impl));
}

}  // namespace q3vl
