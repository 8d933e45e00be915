#include "util/assets.h"

#include <string>

#include "q3vl/error.h"

namespace q3vl::assets {

std::string_view get(std::string_view name) {
  for (const Asset& asset : all()) {
    if (asset.name == name) return asset.text;
  }
  throw Error("no embedded asset named '" + std::string(name) + "'");
}

}  // namespace q3vl::assets
