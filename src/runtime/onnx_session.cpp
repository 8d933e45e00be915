#include "runtime/onnx_session.h"

#include <cstdlib>

#include "q3vl/error.h"

namespace q3vl {
namespace {

const Ort::MemoryInfo& cpu_memory() {
  static const Ort::MemoryInfo kInfo = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  return kInfo;
}

}  // namespace

namespace {

Ort::Env make_env(int intra_op_threads) {
  Ort::ThreadingOptions threading;
  if (intra_op_threads > 0) threading.SetGlobalIntraOpNumThreads(intra_op_threads);
  threading.SetGlobalInterOpNumThreads(1);
  return Ort::Env(threading, ORT_LOGGING_LEVEL_ERROR, "q3vl");
}

}  // namespace

OnnxEnvironment::OnnxEnvironment(int intra_op_threads) : env_(make_env(intra_op_threads)) {}

OnnxSession::OnnxSession(OnnxEnvironment& environment, const std::filesystem::path& model, const SessionOptions& options)
    : path_(model) {
  if (!std::filesystem::exists(model)) throw InvalidInput(model.string() + ": model file is missing");
  auto make_options = [&](bool shared_threads) {
    Ort::SessionOptions session_options;
    if (shared_threads) session_options.DisablePerSessionThreads();
    session_options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
    if (!options.prepack_weights) session_options.AddConfigEntry("session.disable_prepacking", "1");
    std::string profile = options.profile_prefix;
    if (const char* env = std::getenv("Q3VL_ORT_PROFILE"); profile.empty() && env != nullptr) profile = env;
    if (!profile.empty()) session_options.EnableProfiling((profile + "-" + model.stem().string()).c_str());
    return session_options;
  };
  try {
    session_ = Ort::Session(environment.env(), model.c_str(), make_options(true));
  } catch (const Ort::Exception&) {
    // The process's environment came from elsewhere (e.g. onnxruntime-genai) without global
    // thread pools: fall back to this session's own pool.
    try {
      session_ = Ort::Session(environment.env(), model.c_str(), make_options(false));
    } catch (const Ort::Exception& e) {
      throw Error(model.string() + ": ONNX Runtime cannot load the model: " + e.what());
    }
  }
}

std::vector<std::string> OnnxSession::input_names() const {
  std::vector<std::string> names;
  Ort::AllocatorWithDefaultOptions allocator;
  for (std::size_t i = 0; i < session_.GetInputCount(); ++i) names.push_back(session_.GetInputNameAllocated(i, allocator).get());
  return names;
}

std::vector<std::string> OnnxSession::output_names() const {
  std::vector<std::string> names;
  Ort::AllocatorWithDefaultOptions allocator;
  for (std::size_t i = 0; i < session_.GetOutputCount(); ++i) names.push_back(session_.GetOutputNameAllocated(i, allocator).get());
  return names;
}

std::vector<Ort::Value> OnnxSession::run(const std::vector<std::string>& input_names, std::vector<Ort::Value>& inputs,
                                         const std::vector<std::string>& output_names) {
  std::vector<const char*> in_names;
  for (const std::string& name : input_names) in_names.push_back(name.c_str());
  std::vector<const char*> out_names;
  for (const std::string& name : output_names) out_names.push_back(name.c_str());
  try {
    return session_.Run(Ort::RunOptions{nullptr}, in_names.data(), inputs.data(), inputs.size(), out_names.data(),
                        out_names.size());
  } catch (const Ort::Exception& e) {
    throw Error(path_.string() + ": inference failed: " + e.what());
  }
}

void OnnxSession::run(Ort::IoBinding& binding) {
  try {
    session_.Run(Ort::RunOptions{nullptr}, binding);
  } catch (const Ort::Exception& e) {
    throw Error(path_.string() + ": inference failed: " + e.what());
  }
}

Ort::Value tensor_view(std::span<float> data, const std::vector<std::int64_t>& shape) {
  return Ort::Value::CreateTensor<float>(cpu_memory(), data.data(), data.size(), shape.data(), shape.size());
}

Ort::Value tensor_view(std::span<std::int64_t> data, const std::vector<std::int64_t>& shape) {
  return Ort::Value::CreateTensor<std::int64_t>(cpu_memory(), data.data(), data.size(), shape.data(), shape.size());
}

std::vector<std::int64_t> tensor_shape(const Ort::Value& value) { return value.GetTensorTypeAndShapeInfo().GetShape(); }

}  // namespace q3vl
