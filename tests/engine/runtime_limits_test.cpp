// Limits the runtime checks before doing heavy work: the vision encoder's memory estimate and
// budget, and UTF-8 errors reported at offsets in the user's own text.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "model/random_checkpoint.h"
#include "q3vl/error.h"
#include "text/tokenizer.h"
#include "engine/vision_encoder.h"

namespace q3vl {
namespace {

// The graph holds, at once, an [N, N] float attention bias and ONNX Runtime's float scores for
// every head, [heads, N, N]: the estimate may never be below those.
// The vision graph attends per item without a mask, so its memory grows with the patches, not
// their square: twice the patches never needs more than twice the memory.
TEST(VisionMemory, EstimateIsLinearInThePatches) {
  int checked = 0;
  for (const std::string preset : {"tiny", "2b", "4b"}) {
    const ModelConfig config = random_checkpoint_config(preset);
    for (const std::int64_t patches : {64, 1024, 4096, 47000, 1 << 19}) {
      const auto one = static_cast<double>(estimate_vision_peak_bytes(config, patches));
      const auto two = static_cast<double>(estimate_vision_peak_bytes(config, 2 * patches));
      EXPECT_LE(two, 2.0 * one) << preset << " " << patches;
      // At least the MLP's hidden activations [N, intermediate] (float) are counted.
      EXPECT_GE(one, static_cast<double>(patches) * 4.0 * static_cast<double>(config.vision.intermediate_size))
          << preset << " " << patches;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 15);
}

// The 4000x3000 photo of issue 9 (47000 patches) asked ONNX Runtime for an 8.8 GB attention bias
// alone (tens of GB in all); its activations in the 2B encoder are now a few GB.
TEST(VisionMemory, AFourThousandByThreeThousandPhotoNeedsAFewGigabytes) {
  const ModelConfig config = random_checkpoint_config("2b");
  EXPECT_LT(estimate_vision_peak_bytes(config, 47000), std::uint64_t{8} << 30);
  EXPECT_LT(estimate_vision_peak_bytes(config, 784), std::uint64_t{1} << 30);  // a 448x448 image: small
}

TEST(VisionMemory, BudgetFromTheEnvironment) {
  ::setenv("Q3VL_MAX_VISION_MEMORY_MB", "1234", 1);
  EXPECT_EQ(default_vision_memory_budget_bytes(), std::uint64_t{1234} << 20);
  int checked = 0;
  for (const char* bad : {"0", "-5", "12x", "lots", "99999999999999999999"}) {
    ::setenv("Q3VL_MAX_VISION_MEMORY_MB", bad, 1);
    try {
      default_vision_memory_budget_bytes();
      ADD_FAILURE() << bad << " accepted";
    } catch (const InvalidInput& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("Q3VL_MAX_VISION_MEMORY_MB=") + bad), std::string::npos) << e.what();
    }
    ++checked;
  }
  EXPECT_EQ(checked, 5);
  ::unsetenv("Q3VL_MAX_VISION_MEMORY_MB");
  EXPECT_GT(default_vision_memory_budget_bytes(), std::uint64_t{0});
}

TEST(Utf8, OffsetIsInTheUsersText) {
  EXPECT_NO_THROW(require_valid_utf8("caf\xc3\xa9", "--prompt"));
  try {
    require_valid_utf8("ab\xff", "--prompt");
    FAIL() << "accepted";
  } catch (const InvalidInput& e) {
    EXPECT_STREQ(e.what(), "--prompt is not valid UTF-8: bad sequence at byte offset 2 (0xFF)");
  }
}

}  // namespace
}  // namespace q3vl
