#include "model/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "model/tensor_names.h"
#include "q3vl/error.h"
#include "util/files.h"
#include "util/json_fields.h"

namespace q3vl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr const char* kSingleFile = "model.safetensors";

// weight_map of a sharded checkpoint: tensor name -> shard file name (inside `dir`).
std::map<std::string, std::string> read_weight_map(const fs::path& index_path) {
  const json root = read_json_bounded(index_path);
  const JsonField weight_map = JsonField(root, index_path.string()).object("weight_map");
  std::map<std::string, std::string> map;
  for (const auto& [name, file] : weight_map.value().items()) {
    const std::string shard = weight_map.at(name).string();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
      throw InvalidInput(index_path.string() + ": shard name \"" + shard + "\" for " + name +
                         " is not a plain file name");
    }
    map[name] = shard;
  }
  return map;
}

// A shard that is a FIFO or a device would block the mapping or never end.
std::unique_ptr<SafetensorsFile> open_shard(const fs::path& path) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) throw InvalidInput(path.string() + ": not a regular file");
  return std::make_unique<SafetensorsFile>(path);
}

}  // namespace

Checkpoint Checkpoint::open(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw InvalidInput(dir.string() + " is not a checkpoint folder");
  Checkpoint ckpt;
  ckpt.dir_ = dir;
  ckpt.config_ = load_model_config(dir / "config.json");

  if (fs::exists(dir / kIndexFile)) {
    const auto weight_map = read_weight_map(dir / kIndexFile);
    std::set<std::string> shard_names;
    for (const auto& [name, shard] : weight_map) shard_names.insert(shard);
    for (const std::string& shard : shard_names) {
      const fs::path path = dir / shard;
      if (!fs::exists(path)) {
        throw InvalidInput(path.string() + ": shard listed in " + std::string(kIndexFile) + " is missing");
      }
      ckpt.shard_paths_.push_back(path);
    }
    for (std::size_t i = 0; i < ckpt.shard_paths_.size(); ++i) {
      ckpt.shards_.push_back(open_shard(ckpt.shard_paths_[i]));
      ckpt.index_shard(i, &weight_map);
    }
    for (const auto& [name, shard] : weight_map) {
      if (!ckpt.has(name)) {
        throw InvalidInput((dir / shard).string() + ": tensor \"" + name + "\" listed in " +
                           std::string(kIndexFile) + " is not in this shard");
      }
    }
  } else if (fs::exists(dir / kSingleFile)) {
    ckpt.shard_paths_.push_back(dir / kSingleFile);
    ckpt.shards_.push_back(open_shard(dir / kSingleFile));
    ckpt.index_shard(0, nullptr);
  } else {
    throw InvalidInput(dir.string() + ": no " + std::string(kSingleFile) + " or " + std::string(kIndexFile));
  }
  check_config_fits_files(ckpt.config_, ckpt.tensors_.size(), (dir / "config.json").string());
  ckpt.validate();
  return ckpt;
}

void Checkpoint::index_shard(std::size_t shard, const std::map<std::string, std::string>* weight_map) {
  const fs::path name = shard_paths_[shard].filename();
  for (const TensorInfo& info : shards_[shard]->tensors()) {
    if (weight_map != nullptr) {
      const auto it = weight_map->find(info.name);
      if (it == weight_map->end() || it->second != name.string()) continue;  // index decides
    }
    if (tensors_.count(info.name) != 0) {
      throw InvalidInput(shard_paths_[shard].string() + ": tensor \"" + info.name + "\" appears twice");
    }
    tensors_[info.name] = Location{shard, &info};
  }
}

TensorView Checkpoint::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end() && name == names::kLmHead && config_.tie_word_embeddings) {
    it = tensors_.find(names::kEmbedTokens);
  }
  if (it == tensors_.end()) throw InvalidInput(dir_.string() + ": no tensor \"" + name + "\"");
  return shards_[it->second.shard]->view(*it->second.info);
}

void Checkpoint::release(const TensorView& tensor) const {
  const auto it = tensors_.find(tensor.name());
  if (it != tensors_.end()) shards_[it->second.shard]->release(tensor);
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> out;
  for (const auto& [name, location] : tensors_) out.push_back(name);
  return out;
}

std::uint64_t Checkpoint::weight_bytes() const {
  std::uint64_t total = 0;
  for (const auto& [name, location] : tensors_) total += location.info->end - location.info->begin;
  return total;
}

void Checkpoint::validate() {
  std::set<std::string> known;
  for (const TensorSpec& spec : expected_tensors(config_)) {
    known.insert(spec.name);
    const auto it = tensors_.find(spec.name);
    if (it == tensors_.end()) {
      if (!spec.required) continue;
      throw InvalidInput(dir_.string() + ": tensor \"" + spec.name + "\" (shape " +
                         shape_string(spec.shape) + ") is missing from the checkpoint");
    }
    const TensorInfo& info = *it->second.info;
    const std::string where = shard_paths_[it->second.shard].string() + ": tensor \"" + spec.name + "\"";
    if (info.dtype != DType::BF16 && info.dtype != DType::F16 && info.dtype != DType::F32) {
      throw InvalidInput(where + " has dtype " + std::string(dtype_name(info.dtype)) +
                         "; expected BF16, F16 or F32");
    }
    if (info.shape != spec.shape && (spec.alternative_shape.empty() || info.shape != spec.alternative_shape)) {
      throw InvalidInput(where + " has shape " + shape_string(info.shape) + " but config.json implies " +
                         shape_string(spec.shape) +
                         (spec.alternative_shape.empty() ? "" : " or " + shape_string(spec.alternative_shape)));
    }
  }
  for (const auto& [name, location] : tensors_) {
    if (known.count(name) == 0) unexpected_.push_back(name);
  }
  // Tied models: the embedding is authoritative; a stored lm_head must be the same tensor.
  if (config_.tie_word_embeddings && has(names::kLmHead)) {
    const TensorView head = tensor(names::kLmHead);
    const TensorView embed = tensor(names::kEmbedTokens);
    if (head.dtype() != embed.dtype() || head.bytes.size() != embed.bytes.size() ||
        std::memcmp(head.bytes.data(), embed.bytes.data(), head.bytes.size()) != 0) {
      throw InvalidInput(dir_.string() + ": tie_word_embeddings is true but lm_head.weight differs from " +
                         std::string(names::kEmbedTokens));
    }
  }
}

}  // namespace q3vl
