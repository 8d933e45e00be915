#include "q3vl/model.h"

#include "engine/model_data.h"
#include "kernels/int4_matrices.h"
#include "q3vl/error.h"

namespace q3vl {
namespace {

SessionOptions counted(std::atomic<std::int64_t>& counter) {
  SessionOptions options;
  options.sessions_created = &counter;
  return options;
}

SessionOptions decoder_options(SessionOptions options, const Package& package) {
  options.prepack_weights = !package.float_decoder();
  return options;
}

}  // namespace

ModelData::ModelData(const std::filesystem::path& dir, const ModelOptions& options)
    : package(Package::open(dir)),
      preprocess(read_preprocess_options(package.preprocessor_config(), (dir / "q3vl_package.json").string())),
      video_preprocess(read_video_preprocess_options(
          JsonField(package.video_preprocessor_config(), (dir / "q3vl_package.json").string(), "video_preprocessor_config"))),
      prepack_vision(options.prepack_vision),
      release_vision_after_use(options.release_vision_after_use),
      environment(options.threads, options.verbose),
      session_options(counted(sessions_created)),
      vision_cache(options.vision_cache_bytes > 0 ? std::make_unique<VisionFeatureCache>(options.vision_cache_bytes) : nullptr),
      text_model(choose_text_model(package, Ort::GetVersionString(), options.prepacked_text, options.q3vl_kernels)),
      vision_model(choose_vision_model(package, options.q3vl_kernels, kernels::int8_kernels_fast())),
      // Session creation is mostly single-threaded weight prepacking: on a second core, the vision
      // encoder and the tokenizer load in the time the text models take.
      vision_preload_(options.preload_vision && std::filesystem::exists(package.vision_model())
                          ? std::async(std::launch::async, [this] { return load_vision(); })
                          : std::future<std::unique_ptr<VisionEncoder>>()),
      tokenizer_load_(std::async(std::launch::async, [this] { return Tokenizer::load(package.tokenizer_json()); })),
      embedding(environment, package.embedding_model(), package.config(), session_options),
      decoder(environment, text_model.model, package.config(), decoder_options(session_options, package)),
      tokenizer(tokenizer_load_.get()),
      chat_template(load_chat_template(package.dir() / "tokenizer_config.json")) {
  check_model_interface(package, PackagePart::Embedding, embedding.session().interface());
  check_model_interface(package, PackagePart::Text, decoder.session().interface());
}

std::unique_ptr<VisionEncoder> ModelData::load_vision() {
  if (!std::filesystem::exists(package.vision_model())) {
    throw InvalidInput(package.dir().string() + " has no vision model (built with --only?)");
  }
  SessionOptions vision_options = session_options;  // the encoder sets its own memory use (VisionEncoder)
  // Quantized weights on ONNX Runtime's MatMulNBits always: without its packed layout an image
  // encodes ~1.8x slower, and packing them takes ~1 s (2B int8), not the float encoder's ~4 s.
  // q3vl's kernels read them as they lie.
  vision_options.prepack_weights = prepack_vision || (!package.float_vision() && !vision_model.kernels);
  auto vision = std::make_unique<VisionEncoder>(environment, vision_model.model, package.config(), vision_options);
  check_model_interface(package, PackagePart::Vision, vision->session().interface());
  return vision;
}

std::shared_ptr<const VisionEncoder> ModelData::vision() {
  const std::lock_guard<std::mutex> lock(vision_mutex_);
  if (!vision_) {
    // A failed preload reports its error here, once; a later image tries to load again.
    vision_ = vision_preload_.valid() ? vision_preload_.get() : load_vision();
  }
  return vision_;
}

void ModelData::release_vision() {
  const std::lock_guard<std::mutex> lock(vision_mutex_);
  vision_.reset();
}

Model::Model(std::unique_ptr<ModelData> data) : data_(std::move(data)) {}
Model::~Model() = default;

std::shared_ptr<const Model> Model::load(const std::filesystem::path& package, const ModelOptions& options) {
  return std::shared_ptr<const Model>(new Model(std::make_unique<ModelData>(package, options)));
}

const std::filesystem::path& Model::package_dir() const { return data_->package.dir(); }
std::int64_t Model::max_length() const { return data_->package.max_length(); }
const SamplingOptions& Model::default_sampling() const { return data_->package.generation_defaults().sampling; }
std::int64_t Model::pixels_per_image_token() const {
  const VisionConfig& v = data_->package.config().vision;
  return v.patch_size * v.spatial_merge_size * v.patch_size * v.spatial_merge_size;
}
std::int64_t Model::min_image_tokens() const { return data_->preprocess.min_pixels / pixels_per_image_token(); }
std::int64_t Model::max_image_tokens() const { return data_->preprocess.max_pixels / pixels_per_image_token(); }
std::int64_t Model::sessions_loaded() const { return data_->sessions_created.load(); }
const std::string& Model::text_model_note() const { return data_->text_model.note; }
const std::string& Model::vision_model_note() const { return data_->vision_model.note; }

const JsonTokenMask& ModelData::json_token_mask() {
  std::call_once(json_mask_once_, [this] { json_mask_ = std::make_unique<JsonTokenMask>(tokenizer); });
  return *json_mask_;
}

}  // namespace q3vl
