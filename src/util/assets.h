#pragma once
// Small text files compiled into the library (see cmake/EmbedAssets.cmake): the Qwen3-VL chat
// template and the reference config files that `make-tiny` writes next to random weights.
#include <string_view>
#include <vector>

namespace q3vl::assets {

struct Asset {
  std::string_view name;
  std::string_view text;
};

const std::vector<Asset>& all();

// The asset with this file name; throws q3vl::Error if there is none.
std::string_view get(std::string_view name);

}  // namespace q3vl::assets
