#include "model/expert_layout.h"

#include "q3vl/error.h"
#include "util/shape.h"

namespace q3vl {

std::vector<std::int64_t> expert_tensor_shape(ExpertLayout layout, std::int64_t experts, std::int64_t out,
                                              std::int64_t in) {
  return layout == ExpertLayout::OutIn ? std::vector<std::int64_t>{experts, out, in}
                                       : std::vector<std::int64_t>{experts, in, out};
}

ExpertLayout expert_layout(const std::vector<std::int64_t>& shape, std::int64_t experts, std::int64_t out,
                           std::int64_t in, const std::string& tensor) {
  if (shape == expert_tensor_shape(ExpertLayout::OutIn, experts, out, in)) return ExpertLayout::OutIn;
  if (shape == expert_tensor_shape(ExpertLayout::InOut, experts, out, in)) return ExpertLayout::InOut;
  throw InvalidInput("expert tensor \"" + tensor + "\" has shape " + shape_string(shape) + "; config.json implies " +
                     shape_string(expert_tensor_shape(ExpertLayout::OutIn, experts, out, in)) + " or " +
                     shape_string(expert_tensor_shape(ExpertLayout::InOut, experts, out, in)));
}

}  // namespace q3vl
