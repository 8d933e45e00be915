#include "ort/onnx_session.h"

#include <pthread.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>

#include "q3vl/error.h"
#include "util/cpu_cores.h"

namespace q3vl {
namespace {

const Ort::MemoryInfo& cpu_memory() {
  static const Ort::MemoryInfo kInfo = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  return kInfo;
}

}  // namespace

namespace {

// ONNX Runtime's log lines without its ANSI colours, in q3vl's prefix style. Errors also come back
// as exceptions, which say more, so the log adds only what the level asks for.
void log_without_colours(void* /*param*/, OrtLoggingLevel severity, const char* /*category*/, const char* /*logid*/,
                         const char* /*code_location*/, const char* message) {
  const char* kind = severity >= ORT_LOGGING_LEVEL_ERROR ? "error" : severity == ORT_LOGGING_LEVEL_WARNING ? "warning" : "info";
  std::fprintf(stderr, "q3vl: onnxruntime %s: %s\n", kind, message);
}

Ort::Env make_env(int intra_op_threads, bool verbose) {
  Ort::ThreadingOptions threading;
  // Always an explicit count: ONNX Runtime's default for 0 gave one thread on a 2-core VM.
  threading.SetGlobalIntraOpNumThreads(intra_op_threads > 0 ? intra_op_threads : available_physical_cores());
  threading.SetGlobalInterOpNumThreads(1);
  // Only fatal problems are logged unless verbose: every error reaches the user as an exception
  // with context already, and a second, raw copy of it only confuses.
  return Ort::Env(threading, log_without_colours, nullptr, verbose ? ORT_LOGGING_LEVEL_WARNING : ORT_LOGGING_LEVEL_FATAL,
                  "q3vl");
}

std::size_t command_line_bytes() {
  std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
  std::size_t total = 0;
  std::array<char, 65536> buffer{};
  while (cmdline.read(buffer.data(), buffer.size()) || cmdline.gcount() > 0) total += static_cast<std::size_t>(cmdline.gcount());
  return total;
}

// The environment's first creation makes ONNX Runtime's telemetry library match a std::regex over
// the whole command line (/proc/self/cmdline); libstdc++'s regex recurses once per character, so a
// 50 KB --prompt overflowed the 8 MB main stack (SIGSEGV). The environment is therefore created on
// a thread whose stack grows with the command line (~256 bytes of stack per byte measured; twice that
// is reserved); the memory is only reserved, pages are touched only as deep as the regex goes.
Ort::Env make_env_on_large_stack(int intra_op_threads, bool verbose) {
  constexpr std::size_t kStackBytesPerCommandLineByte = 512;
  const std::size_t stack_bytes = (std::size_t{64} << 20) + kStackBytesPerCommandLineByte * command_line_bytes();
  struct Work {
    int threads;
    bool verbose;
    Ort::Env env{nullptr};
    std::exception_ptr error;
  } work{intra_op_threads, verbose, Ort::Env{nullptr}, nullptr};
  pthread_attr_t attributes;
  if (pthread_attr_init(&attributes) != 0) throw Error("cannot set up a thread for ONNX Runtime's environment");
  pthread_attr_setstacksize(&attributes, stack_bytes);
  pthread_t thread;
  const int created = pthread_create(
      &thread, &attributes,
      [](void* argument) -> void* {
        auto* w = static_cast<Work*>(argument);
        try {
          w->env = make_env(w->threads, w->verbose);
        } catch (...) {
          w->error = std::current_exception();
        }
        return nullptr;
      },
      &work);
  pthread_attr_destroy(&attributes);
  if (created != 0) {
    throw Error("cannot start a thread with a " + std::to_string(stack_bytes >> 20) +
                " MB stack for ONNX Runtime's environment (the command line is very long): " + std::strerror(created));
  }
  pthread_join(thread, nullptr);
  if (work.error) {
    try {
      std::rethrow_exception(work.error);
    } catch (const Ort::Exception& e) {
      throw Error(std::string("ONNX Runtime cannot create its environment: ") + e.what());
    }
  }
  return std::move(work.env);
}

// The same telemetry library opens a trace file, $TMPDIR/mat-debug-<pid>.log, in every process and
// leaves it behind: hundreds pile up in /tmp. The file whose name carries this process's id, held
// open by this process, and empty or written since the environment was made, is ONNX Runtime's
// (it logs there when processes sharing $TMPDIR contend for its session database): remove it.
void remove_telemetry_trace_file(std::filesystem::file_time_type since) {
  const std::string name = "mat-debug-" + std::to_string(::getpid()) + ".log";
  std::error_code error;
  std::filesystem::directory_iterator fds("/proc/self/fd", error);
  if (error) return;
  for (const auto& fd : fds) {
    const std::filesystem::path target = std::filesystem::read_symlink(fd.path(), error);
    if (error || target.filename() != name) continue;
    if (!std::filesystem::is_regular_file(target, error) || error) continue;
    const bool empty = std::filesystem::file_size(target, error) == 0 && !error;
    const bool written_by_us = std::filesystem::last_write_time(target, error) >= since && !error;
    if (empty || written_by_us) std::filesystem::remove(target, error);
  }
}

// ONNX Runtime 1.29's CPU QMoE kernel (MoE packages' int4 experts) dequantizes every chosen
// expert on every call unless this variable asks for MLAS's blocked int4 GEMM, which packs the
// experts once at load: 10x the decode speed on a 30B-A3B-shaped model (README). Its kernels read
// the variable when they are built, and nothing else offers the switch. A value the user set stays.
void prefer_packed_int4_experts() { ::setenv("ORT_USE_MLAS_Q4_GEMM_MOE", "1", /*overwrite=*/0); }

}  // namespace

OnnxEnvironment::OnnxEnvironment(int intra_op_threads, bool verbose)
    // Less a margin: file times come from the kernel's coarse clock, a little behind this one.
    : created_(std::filesystem::file_time_type::clock::now() - std::chrono::seconds(2)), env_(make_env_on_large_stack(intra_op_threads, verbose)) {
  remove_telemetry_trace_file(created_);
  prefer_packed_int4_experts();
}

// The telemetry library may open its file after the environment exists (on a loaded machine the
// check above can come first): look again when the environment goes.
OnnxEnvironment::~OnnxEnvironment() { remove_telemetry_trace_file(created_); }

OnnxSession::OnnxSession(OnnxEnvironment& environment, const std::filesystem::path& model, const SessionOptions& options)
    : path_(model), shrink_arena_after_run_(options.memory_arena && options.shrink_arena_after_run) {
  if (!std::filesystem::exists(model)) throw InvalidInput(model.string() + ": model file is missing");
  auto make_options = [&](bool shared_threads) {
    Ort::SessionOptions session_options;
    if (shared_threads) session_options.DisablePerSessionThreads();
    session_options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
    environment.q3vl_ops().add_to(session_options);
    if (!options.prepack_weights) session_options.AddConfigEntry("session.disable_prepacking", "1");
    if (!options.memory_arena) session_options.DisableCpuMemArena();
    if (!options.memory_pattern) session_options.DisableMemPattern();
    if (!options.save_prepacked_model.empty()) {
      session_options.SetOptimizedModelFilePath(options.save_prepacked_model.c_str());
      const std::string data_name = options.save_prepacked_model.filename().string() + ".data";
      session_options.AddConfigEntry("session.optimized_model_external_initializers_file_name", data_name.c_str());
      session_options.AddConfigEntry("session.optimized_model_external_initializers_min_size_in_bytes", "1024");
      session_options.AddConfigEntry("session.save_external_prepacked_constant_initializers", "1");
    }
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
  if (options.sessions_created != nullptr) ++*options.sessions_created;
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

std::map<std::string, std::vector<std::int64_t>> OnnxSession::interface() const {
  std::map<std::string, std::vector<std::int64_t>> io;
  Ort::AllocatorWithDefaultOptions allocator;
  for (std::size_t i = 0; i < session_.GetInputCount(); ++i) {
    io[session_.GetInputNameAllocated(i, allocator).get()] = session_.GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetShape();
  }
  for (std::size_t i = 0; i < session_.GetOutputCount(); ++i) {
    io[session_.GetOutputNameAllocated(i, allocator).get()] = session_.GetOutputTypeInfo(i).GetTensorTypeAndShapeInfo().GetShape();
  }
  return io;
}

Ort::RunOptions OnnxSession::run_options() const {
  if (!shrink_arena_after_run_) return Ort::RunOptions{nullptr};
  Ort::RunOptions options;
  options.AddConfigEntry("memory.enable_memory_arena_shrinkage", "cpu:0");
  return options;
}

std::vector<Ort::Value> OnnxSession::run(const std::vector<std::string>& input_names, std::vector<Ort::Value>& inputs,
                                         const std::vector<std::string>& output_names) const {
  std::vector<const char*> in_names;
  for (const std::string& name : input_names) in_names.push_back(name.c_str());
  std::vector<const char*> out_names;
  for (const std::string& name : output_names) out_names.push_back(name.c_str());
  try {
    return session_.Run(run_options(), in_names.data(), inputs.data(), inputs.size(), out_names.data(),
                        out_names.size());
  } catch (const Ort::Exception& e) {
    throw Error(path_.string() + ": inference failed: " + e.what());
  }
}

void OnnxSession::run(Ort::IoBinding& binding) const {
  try {
    session_.Run(run_options(), binding);
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
