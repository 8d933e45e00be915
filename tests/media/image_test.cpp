// Image decoding and preprocessing against the reference: PIL (what transformers' load_image
// returns), torch/torchvision (the resize) and transformers' Qwen2VLImageProcessor (pixel_values).
// Fixtures: tests/fixtures/golden (the model cases) and tests/fixtures/image, written by
// tools/golden/gen_image_fixtures.py.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "q3vl/error.h"
#include "q3vl/image.h"
#include "media/image_preprocess.h"
#include "support/golden.h"
#include "util/files.h"
#include "support/test_support.h"
#include "util/npy.h"

namespace q3vl {
namespace {

using nlohmann::json;

std::filesystem::path image_fixtures() { return test::source_dir() / "tests" / "fixtures" / "image"; }

json read_json(const std::filesystem::path& path) { return json::parse(read_text_file(path)); }

std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path) {
  const std::string text = read_text_file(path);
  return {text.begin(), text.end()};
}

// Bitwise equality of float arrays (EXPECT_EQ on floats would accept -0 == 0).
bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The generator's deterministic pixels (gen_image_fixtures.py: generated_pixel).
std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint8_t generated_pixel(std::uint64_t seed, int pattern, std::int64_t y, std::int64_t x, std::int64_t c) {
  const auto noise = static_cast<std::uint8_t>(
      mix64(seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>((y * 65536 + x) * 4 + c)) & 0xFF);
  if (pattern == 0) return noise;
  if (pattern == 1) return ((x / 3 + y / 5 + c) % 2) ? 255 : 0;
  return static_cast<std::uint8_t>(((x * 7 + y * 3 + c * 50) + (noise >> 3)) % 256);
}

RgbImage generated_image(std::uint64_t seed, int pattern, std::int64_t height, std::int64_t width) {
  RgbImage image;
  image.width = width;
  image.height = height;
  for (std::int64_t y = 0; y < height; ++y)
    for (std::int64_t x = 0; x < width; ++x)
      for (std::int64_t c = 0; c < 3; ++c) image.pixels.push_back(generated_pixel(seed, pattern, y, x, c));
  return image;
}

// ------------------------------------------------------------------------------------------------
// Preprocessing against the golden model cases and the processor cases.

TEST(ImageGolden, PixelValuesAndGridsMatchEveryGoldenCaseBitExactly) {
  int checked = 0;
  for (const test::GoldenCase& c : test::golden_cases()) {
    if (!c.has("pixel_values")) continue;
    SCOPED_TRACE(c.name);
    const ModelConfig config = load_model_config(c.model_dir() / "config.json");
    const PreprocessOptions options =
        read_preprocess_options(read_json(c.model_dir() / "preprocessor_config.json"), "preprocessor_config.json");
    std::vector<float> pixel_values;
    std::vector<std::int64_t> grids;
    for (const json& image : c.entry["images"]) {
      const RgbImage decoded =
          decode_image_file(test::golden_dir() / c.entry["dir"].get<std::string>() / image["file"].get<std::string>());
      ASSERT_EQ(decoded.height, image["height"].get<std::int64_t>());
      ASSERT_EQ(decoded.width, image["width"].get<std::int64_t>());
      const ImageInput input = preprocess_image(decoded, config, options);
      pixel_values.insert(pixel_values.end(), input.pixel_values.begin(), input.pixel_values.end());
      grids.insert(grids.end(), {input.grid.t, input.grid.h, input.grid.w});
    }
    EXPECT_EQ(grids, c.load("image_grid_thw").as_int64());
    const std::vector<float> expected = c.load("pixel_values").as_float();
    ASSERT_EQ(pixel_values.size(), expected.size());
    EXPECT_TRUE(same_bits(pixel_values, expected));
    ++checked;
  }
  EXPECT_EQ(static_cast<std::size_t>(checked), test::golden_cases_with_images());
  EXPECT_GE(checked, 5);
}

TEST(ImageProcessor, DecodeAndPreprocessMatchTransformersEndToEnd) {
  const json fixture = read_json(image_fixtures() / "processor.json");
  ModelConfig config;  // patch 16, temporal 2, merge 2, 3 channels: the defaults
  for (const json& c : fixture["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const PreprocessOptions options = read_preprocess_options(c["preprocessor_config"], c["name"]);
    const ImageInput input =
        preprocess_image(decode_image_file(image_fixtures() / "processor" / c["file"].get<std::string>()), config, options);
    EXPECT_EQ((std::vector<std::int64_t>{input.grid.t, input.grid.h, input.grid.w}),
              c["image_grid_thw"].get<std::vector<std::int64_t>>());
    const NpyArray expected = read_npy(image_fixtures() / "processor" / c["pixel_values"].get<std::string>());
    EXPECT_TRUE(same_bits(input.pixel_values, expected.as_float()));
  }
}

TEST(ImagePreprocess, PatchRowsFollowTheSpecOrder) {
  // Pixel (y, x) holds y in red and x in green, so each row of pixel_values tells where it came from.
  RgbImage image;
  image.width = 64;
  image.height = 96;
  for (std::int64_t y = 0; y < image.height; ++y)
    for (std::int64_t x = 0; x < image.width; ++x) image.pixels.insert(image.pixels.end(), {std::uint8_t(y), std::uint8_t(x), 7});
  PreprocessOptions options;
  options.min_pixels = 1024;
  options.mean = {0, 0, 0};
  options.std = {1, 1, 1};
  options.rescale_factor = 1.0;  // pixel_values are then the raw values
  const ImageInput input = preprocess_image(image, ModelConfig{}, options);
  ASSERT_EQ(input.grid.h, 6);
  ASSERT_EQ(input.grid.w, 4);
  const std::int64_t gw = input.grid.w;
  for (std::int64_t bh = 0; bh < 3; ++bh)
    for (std::int64_t bw = 0; bw < 2; ++bw)
      for (std::int64_t mh = 0; mh < 2; ++mh)
        for (std::int64_t mw = 0; mw < 2; ++mw) {
          const std::int64_t row = ((bh * (gw / 2) + bw) * 2 + mh) * 2 + mw;  // docs/model-math.md §3.5
          const float* values = input.pixel_values.data() + row * 1536;
          for (std::int64_t t = 0; t < 2; ++t)
            for (std::int64_t py = 0; py < 16; py += 5)
              for (std::int64_t px = 0; px < 16; px += 3) {
                const std::int64_t at = t * 256 + py * 16 + px;
                EXPECT_EQ(values[at], static_cast<float>((bh * 2 + mh) * 16 + py));        // channel 0: y
                EXPECT_EQ(values[512 + at], static_cast<float>((bw * 2 + mw) * 16 + px));  // channel 1: x
                EXPECT_EQ(values[1024 + at], 7.0f);
              }
        }
}

TEST(ImagePreprocess, OptionsFromPreprocessorConfig) {
  const PreprocessOptions shipped = read_preprocess_options(read_json(test::reference_model_files() / "preprocessor_config.json"));
  EXPECT_EQ(shipped.min_pixels, 65536);
  EXPECT_EQ(shipped.max_pixels, 16777216);
  EXPECT_EQ(shipped.mean, (std::array<float, 3>{0.5f, 0.5f, 0.5f}));
  const PreprocessOptions overridden = read_preprocess_options(json::parse(
      R"({"size": {"shortest_edge": 100, "longest_edge": 200}, "min_pixels": 3136, "max_pixels": 12845056,
          "image_mean": [0.1, 0.2, 0.3], "image_std": 0.25, "rescale_factor": 0.5})"));
  EXPECT_EQ(overridden.min_pixels, 3136);  // HF: explicit min/max_pixels win over size
  EXPECT_EQ(overridden.max_pixels, 12845056);
  EXPECT_EQ(overridden.mean, (std::array<float, 3>{0.1f, 0.2f, 0.3f}));
  EXPECT_EQ(overridden.std, (std::array<float, 3>{0.25f, 0.25f, 0.25f}));
  EXPECT_EQ(overridden.rescale_factor, 0.5);
  EXPECT_THROW(read_preprocess_options(json::parse(R"({"image_mean": [0.5, 0.5]})")), InvalidInput);
  EXPECT_THROW(read_preprocess_options(json::parse(R"({"image_std": [0.5, 0, 0.5]})")), InvalidInput);
  EXPECT_THROW(read_preprocess_options(json::parse(R"({"size": {"shortest_edge": -4}})")), InvalidInput);
  EXPECT_THROW(read_preprocess_options(json::parse(R"({"do_normalize": false})")), Unsupported);
  EXPECT_THROW(read_preprocess_options(json::parse(R"({"resample": 2})")), Unsupported);
  EXPECT_THROW(read_preprocess_options(json::parse("[]")), InvalidInput);
}

// ------------------------------------------------------------------------------------------------
// smart_resize and the resize kernel

TEST(ImageSmartResize, SpecWorkedTable) {
  const std::vector<std::array<std::int64_t, 4>> table = {
      {480, 640, 480, 640},   {768, 1024, 768, 1024}, {720, 1280, 704, 1280}, {1080, 1920, 1088, 1920},
      {336, 336, 320, 320},   {224, 224, 256, 256},   {100, 3000, 96, 3008},  {5000, 4000, 4576, 3648}};
  for (const auto& [h, w, rh, rw] : table) {
    EXPECT_EQ(smart_resize(h, w, 32, 65536, 16777216), (std::pair<std::int64_t, std::int64_t>{rh, rw})) << h << "x" << w;
  }
}

TEST(ImageSmartResize, MatchesTransformersOnManySizes) {
  const json fixture = read_json(image_fixtures() / "smart_resize.json");
  int errors = 0;
  for (const json& c : fixture["cases"]) {
    const auto h = c["height"].get<std::int64_t>(), w = c["width"].get<std::int64_t>();
    const auto factor = c["factor"].get<std::int64_t>();
    const auto lo = c["min_pixels"].get<std::int64_t>(), hi = c["max_pixels"].get<std::int64_t>();
    if (c.contains("error")) {
      EXPECT_THROW(smart_resize(h, w, factor, lo, hi), InvalidInput) << h << "x" << w;
      ++errors;
    } else {
      const auto expected = c["resized"].get<std::vector<std::int64_t>>();
      EXPECT_EQ(smart_resize(h, w, factor, lo, hi), (std::pair{expected[0], expected[1]}))
          << h << "x" << w << " factor " << factor << " [" << lo << ", " << hi << "]";
    }
  }
  EXPECT_GT(errors, 0);  // the aspect-ratio error is covered
  EXPECT_GT(fixture["cases"].size(), 1000u);
}

TEST(ImageResize, BitExactWithTorchAntialiasedBicubic) {
  const json fixture = read_json(image_fixtures() / "resize.json");
  const std::vector<std::uint8_t> outputs = read_bytes(image_fixtures() / "resize.bin");
  for (const json& c : fixture["cases"]) {
    const auto in = c["in"].get<std::vector<std::int64_t>>(), out = c["out"].get<std::vector<std::int64_t>>();
    SCOPED_TRACE(std::to_string(in[0]) + "x" + std::to_string(in[1]) + " -> " + std::to_string(out[0]) + "x" +
                 std::to_string(out[1]));
    const RgbImage source = generated_image(c["seed"].get<std::uint64_t>(), c["pattern"].get<int>(), in[0], in[1]);
    const RgbImage resized = resize_bicubic_antialias(source, out[0], out[1]);
    ASSERT_EQ(resized.height, out[0]);
    ASSERT_EQ(resized.width, out[1]);
    const auto offset = c["offset"].get<std::size_t>();
    ASSERT_LE(offset + resized.pixels.size(), outputs.size());
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < resized.pixels.size(); ++i) mismatches += resized.pixels[i] != outputs[offset + i];
    EXPECT_EQ(mismatches, 0u);
  }
}

TEST(ImageResize, SameSizeIsACopyAndBadSizesAreErrors) {
  const RgbImage image = generated_image(3, 0, 5, 7);
  EXPECT_EQ(resize_bicubic_antialias(image, 5, 7).pixels, image.pixels);
  EXPECT_THROW(resize_bicubic_antialias(image, 0, 7), InvalidInput);
  EXPECT_THROW(resize_bicubic_antialias(RgbImage{}, 4, 4), InvalidInput);
}

// ------------------------------------------------------------------------------------------------
// Decoding against PIL

TEST(ImageDecode, EveryFormatAndModeMatchesPil) {
  const json fixture = read_json(image_fixtures() / "decode.json");
  const std::vector<std::uint8_t> expected = read_bytes(image_fixtures() / "decode.bin");
  // Every format is exact, JPEG included: libjpeg-turbo 2.1 here and PIL's 3.1 decode the same
  // pixels (measured; a ±1 JPEG tolerance was never needed).
  constexpr int kTolerance = 0;
  std::set<std::string> formats;
  int damaged_rejected = 0;
  for (const json& c : fixture["cases"]) {
    const std::string file = c["file"].get<std::string>();
    SCOPED_TRACE(file);
    if (c.contains("error")) {  // PIL rejects this damaged file, so must we
      bool rejected = false;
      try {
        decode_image_file(image_fixtures() / "decode" / file);
      } catch (const InvalidInput&) {
        rejected = true;
      } catch (const Unsupported&) {
        rejected = true;
      }
      EXPECT_TRUE(rejected) << "PIL: " << c["error"].get<std::string>();
      damaged_rejected += rejected;
      continue;
    }
    const RgbImage image = decode_image_file(image_fixtures() / "decode" / file);
    ASSERT_EQ(image.height, c["height"].get<std::int64_t>());
    ASSERT_EQ(image.width, c["width"].get<std::int64_t>());
    const auto offset = c["offset"].get<std::size_t>();
    ASSERT_LE(offset + image.pixels.size(), expected.size());
    int worst = 0;
    std::size_t first_bad = image.pixels.size();
    for (std::size_t i = 0; i < image.pixels.size(); ++i) {
      const int difference = std::abs(int{image.pixels[i]} - int{expected[offset + i]});
      if (difference > kTolerance && first_bad == image.pixels.size()) first_bad = i;
      worst = std::max(worst, difference);
    }
    EXPECT_LE(worst, kTolerance) << "first difference at byte " << first_bad;
    if (worst > kTolerance) continue;
    formats.insert(file.substr(0, file.find('_')));
  }
  EXPECT_EQ(formats, (std::set<std::string>{"bmp", "damaged", "gif", "jpeg", "png", "webp"}));
  EXPECT_GE(damaged_rejected, 8);
}

TEST(ImageDecode, FormatComesFromContentNotName) {
  test::TempDir dir;
  const std::string png = read_text_file(image_fixtures() / "decode" / "png_rgb8.png");
  write_text_file(dir / "really_a_png.jpg", png);
  const RgbImage image = decode_image_file(dir / "really_a_png.jpg");
  EXPECT_EQ(image.width, 13);
  EXPECT_EQ(detect_image_format(read_bytes(dir / "really_a_png.jpg")), ImageFormat::Png);
  const std::vector<std::uint8_t> bytes(png.begin(), png.end());
  EXPECT_EQ(decode_image_memory(bytes, "in memory").pixels, image.pixels);
}

// ------------------------------------------------------------------------------------------------
// Errors: never a crash, always InvalidInput / Unsupported naming the file and the problem.

template <typename E>
void expect_error(const std::function<void()>& run, const std::string& label, const std::string& needle) {
  try {
    run();
    ADD_FAILURE() << "no error; expected one containing \"" << needle << "\"";
  } catch (const E& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(label), std::string::npos) << message;
    EXPECT_NE(message.find(needle), std::string::npos) << message;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

void expect_memory_error_type(const std::vector<std::uint8_t>& bytes, const std::string& label) {
  try {
    decode_image_memory(bytes, label);
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find(label), std::string::npos) << e.what();
  } catch (const Unsupported& e) {
    EXPECT_NE(std::string(e.what()).find(label), std::string::npos) << e.what();
  }
}

TEST(ImageErrors, MissingEmptyAndUnknownFiles) {
  test::TempDir dir;
  expect_error<InvalidInput>([&] { decode_image_file(dir / "nothing.png"); }, "nothing.png", "no such file");
  expect_error<InvalidInput>([&] { decode_image_file(dir.path()); }, dir.path().string(), "not a regular file");
  write_text_file(dir / "empty.jpg", "");
  expect_error<InvalidInput>([&] { decode_image_file(dir / "empty.jpg"); }, "empty.jpg", "empty");
  write_text_file(dir / "notes.png", "just some text, not an image");
  expect_error<Unsupported>([&] { decode_image_file(dir / "notes.png"); }, "notes.png", "not a JPEG, PNG, WebP");
  write_text_file(dir / "scan.tif", std::string("II*\0", 4) + std::string(100, '\0'));
  expect_error<Unsupported>([&] { decode_image_file(dir / "scan.tif"); }, "scan.tif", "TIFF");
  write_text_file(dir / "photo.heic", std::string("\0\0\0\x18" "ftypheic", 12) + std::string(100, '\0'));
  expect_error<Unsupported>([&] { decode_image_file(dir / "photo.heic"); }, "photo.heic", "HEIF");
}

TEST(ImageErrors, LimitsOnPixelsAndFileSize) {
  const std::filesystem::path jpeg = image_fixtures() / "decode" / "jpeg_420.jpg";  // 53x37
  const std::filesystem::path gif = image_fixtures() / "decode" / "gif_global.gif";
  for (const std::filesystem::path& path :
       {jpeg, gif, image_fixtures() / "decode" / "png_rgb8.png", image_fixtures() / "decode" / "webp_lossy.webp",
        image_fixtures() / "decode" / "bmp_rgb24.bmp"}) {
    SCOPED_TRACE(path.filename().string());
    ImageLimits tiny;
    tiny.max_pixels = 50;
    expect_error<InvalidInput>([&] { decode_image_file(path, tiny); }, path.filename().string(), "more than the limit of 50 pixels");
    ImageLimits small_file;
    small_file.max_file_bytes = 20;
    expect_error<InvalidInput>([&] { decode_image_file(path, small_file); }, path.filename().string(), "more than the limit of 20");
  }
  ImageLimits exact;
  exact.max_pixels = 53 * 37;
  EXPECT_EQ(decode_image_file(jpeg, exact).width, 53);
}

TEST(ImageErrors, TruncatedFilesOfEachFormat) {
  for (const char* name : {"jpeg_420.jpg", "jpeg_444_progressive.jpg", "png_rgb8.png", "png_rgb8_interlaced.png",
                           "webp_lossy.webp", "webp_lossless.webp", "bmp_rgb24.bmp", "bmp_rle8.bmp", "gif_global.gif"}) {
    SCOPED_TRACE(name);
    const std::vector<std::uint8_t> whole = read_bytes(image_fixtures() / "decode" / name);
    const std::vector<std::uint8_t> cut(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(whole.size() * 6 / 10));
    expect_error<InvalidInput>([&] { decode_image_memory(cut, name); }, name, "");
  }
  // PIL also rejects a JPEG whose EOI marker is missing.
  const std::vector<std::uint8_t> jpeg = read_bytes(image_fixtures() / "decode" / "jpeg_420.jpg");
  expect_error<InvalidInput>([&] { decode_image_memory({jpeg.begin(), jpeg.end() - 2}, "no_eoi.jpg"); }, "no_eoi.jpg",
                             "truncated");
  // ... but not a PNG without its IEND chunk or a GIF without its trailer (PIL opens both).
  const std::vector<std::uint8_t> png = read_bytes(image_fixtures() / "decode" / "png_rgb8.png");
  EXPECT_EQ(decode_image_memory({png.begin(), png.end() - 12}, "no_iend.png").width, 13);
  const std::vector<std::uint8_t> gif = read_bytes(image_fixtures() / "decode" / "gif_global.gif");
  EXPECT_EQ(decode_image_memory({gif.begin(), gif.end() - 1}, "no_trailer.gif").width, 11);
}

TEST(ImageErrors, CorruptHeadersAreClearErrors) {
  std::vector<std::uint8_t> bmp = read_bytes(image_fixtures() / "decode" / "bmp_rgb24.bmp");
  bmp[28] = 7;  // 7 bits per pixel
  expect_error<Unsupported>([&] { decode_image_memory(bmp, "odd.bmp"); }, "odd.bmp", "7 bits per pixel");
  std::vector<std::uint8_t> png = read_bytes(image_fixtures() / "decode" / "png_rgb8.png");
  png[20] ^= 0x40;  // inside IHDR: the checksum no longer matches
  expect_error<InvalidInput>([&] { decode_image_memory(png, "bad_crc.png"); }, "bad_crc.png", "corrupt PNG");
  std::vector<std::uint8_t> gif = read_bytes(image_fixtures() / "decode" / "gif_global.gif");
  gif.resize(13 + 48 + 1);  // the colour table, then a lone trailer
  gif.back() = 0x3B;
  expect_error<InvalidInput>([&] { decode_image_memory(gif, "empty.gif"); }, "empty.gif", "no image");
  std::vector<std::uint8_t> jpeg = read_bytes(image_fixtures() / "decode" / "jpeg_420.jpg");
  jpeg.resize(200);
  expect_error<InvalidInput>([&] { decode_image_memory(jpeg, "head.jpg"); }, "head.jpg", "JPEG");
}

TEST(ImageErrors, EveryPrefixAndManyBitFlipsOfEveryFixtureFailCleanly) {
  // A small in-test fuzz: every truncation point (sampled for big files) and random single-byte
  // changes either decode or throw InvalidInput / Unsupported naming the input.
  std::uint64_t state = 12345;
  const auto next = [&state] { return state = state * 6364136223846793005ull + 1442695040888963407ull; };
  for (const auto& entry : std::filesystem::directory_iterator(image_fixtures() / "decode")) {
    const std::vector<std::uint8_t> whole = read_bytes(entry.path());
    const std::string label = entry.path().filename().string();
    SCOPED_TRACE(label);
    const std::size_t step = std::max<std::size_t>(1, whole.size() / 60);
    for (std::size_t cut = 0; cut < whole.size(); cut += step) {
      expect_memory_error_type({whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(cut)}, label);
    }
    for (int flip = 0; flip < 40; ++flip) {
      std::vector<std::uint8_t> changed = whole;
      changed[(next() >> 33) % changed.size()] = static_cast<std::uint8_t>(next() >> 40);
      expect_memory_error_type(changed, label);
    }
  }
}

}  // namespace
}  // namespace q3vl
