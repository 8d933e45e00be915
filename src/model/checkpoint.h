#pragma once
// A Hugging Face Qwen3-VL checkpoint folder: config.json plus one or more memory-mapped
// safetensors shards. Opening it checks every tensor the config implies (presence, dtype,
// shape) so an export never starts on a checkpoint it cannot finish.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"

namespace q3vl {

class Checkpoint {
 public:
  // Throws InvalidInput naming the file and tensor for any missing, corrupt or mismatched piece.
  static Checkpoint open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // The tensor; throws InvalidInput if absent. For tied models, lm_head.weight resolves to the
  // embedding when the file has no lm_head.
  TensorView tensor(const std::string& name) const;
  std::vector<std::string> tensor_names() const;
  // Lets the memory under a tensor go once it has been exported (see MappedFile::release).
  void release(const TensorView& tensor) const;
  const std::vector<std::filesystem::path>& shard_paths() const { return shard_paths_; }
  // Tensors in the files that the config does not account for (reported, not fatal).
  const std::vector<std::string>& unexpected_tensors() const { return unexpected_; }
  // Total bytes of the tensors the model uses.
  std::uint64_t weight_bytes() const;

 private:
  struct Location {
    std::size_t shard;
    const TensorInfo* info;
  };

  Checkpoint() = default;
  void index_shard(std::size_t shard, const std::map<std::string, std::string>* weight_map);
  void validate();

  std::filesystem::path dir_;
  ModelConfig config_;
  std::vector<std::filesystem::path> shard_paths_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, Location> tensors_;
  std::vector<std::string> unexpected_;
};

}  // namespace q3vl
