#pragma once
// One ONNX Runtime session over a package model, with the environment shared by all sessions of
// a process. Errors from ONNX Runtime come back as q3vl::Error naming the model.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <onnxruntime_cxx_api.h>

#include "ort/q3vl_ops.h"

namespace q3vl {

struct SessionOptions {
  // ONNX Runtime repacks fp32 MatMul weights into a second copy at load. Off for the fp32 decoder,
  // where it doubles memory (a 4B fp32 decoder would need ~30 GB) for no decode speed; kept for
  // MatMulNBits, whose packed layout is what makes int4/int8 fast.
  bool prepack_weights = true;
  // ONNX Runtime's CPU arena keeps every activation buffer a session ever needed (unless shrunk,
  // below): what a vision run's gigabytes of activations must not do through the prefill that
  // follows and every later turn.
  bool memory_arena = true;
  // With the arena: give its memory beyond the first chunk back after every run (ONNX Runtime's
  // arena shrinkage), so a run's buffers are reused within it but not held between runs.
  bool shrink_arena_after_run = false;
  // ONNX Runtime's memory pattern: after a run, one block sized for every buffer of the plan,
  // reused while the input shapes repeat. For a vision pass that block is larger than what the run
  // itself held at its peak (11 against 9 hidden widths per patch), and images seldom repeat sizes.
  bool memory_pattern = true;
  // Write ONNX Runtime's per-node profile (JSON) with this file prefix; also enabled by the
  // environment variable Q3VL_ORT_PROFILE=prefix, for finding where the time goes.
  std::string profile_prefix;
  // When set, every session created with these options adds one here (a model's load counter).
  std::atomic<std::int64_t>* sessions_created = nullptr;
  // When set, the session also writes its optimized graph here, with every initializer and the
  // weights ONNX Runtime prepacked for this CPU in FILE.data beside it (see package/prepacked_text.h).
  std::filesystem::path save_prepacked_model;
};

// The process's ONNX Runtime environment, with one thread pool shared by all sessions: the vision,
// embedding and decoder sessions take turns, and separate pools would spin against each other
// on a small machine.
class OnnxEnvironment {
 public:
  // intra_op_threads 0: one per physical core this process may use (util/cpu_cores.h). ONNX
  // Runtime's log shows only fatal errors, warnings too when verbose, without its colour codes.
  explicit OnnxEnvironment(int intra_op_threads = 0, bool verbose = false);
  ~OnnxEnvironment();  // removes ONNX Runtime's telemetry trace file if it appeared late
  OnnxEnvironment(const OnnxEnvironment&) = delete;
  OnnxEnvironment& operator=(const OnnxEnvironment&) = delete;
  Ort::Env& env() { return env_; }
  // q3vl's own ops, added to every session (text.kernels.onnx needs them).
  const Q3vlOps& q3vl_ops() const { return ops_; }

 private:
  std::filesystem::file_time_type created_;  // before env_: its trace file is written after this
  Ort::Env env_;
  Q3vlOps ops_;
};

// Thread-safe after construction: ONNX Runtime allows concurrent Run calls on one session, and
// nothing here changes between runs, so one session serves every sequence of a model at once.
class OnnxSession {
 public:
  OnnxSession(OnnxEnvironment& environment, const std::filesystem::path& model, const SessionOptions& options = {});

  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> input_names() const;
  std::vector<std::string> output_names() const;
  // Every input and output: its static dims, -1 where symbolic.
  std::map<std::string, std::vector<std::int64_t>> interface() const;

  // Runs with named inputs and returns the requested outputs in order.
  std::vector<Ort::Value> run(const std::vector<std::string>& input_names, std::vector<Ort::Value>& inputs,
                              const std::vector<std::string>& output_names) const;
  // Runs with inputs and outputs bound in advance (outputs may alias inputs: in-place KV cache).
  void run(Ort::IoBinding& binding) const;
  // Whether each run hands back what it added to the arena (SessionOptions::shrink_arena_after_run).
  bool shrinks_arena_after_run() const { return shrink_arena_after_run_; }
  // For IoBinding and type queries; Run through the members above.
  Ort::Session& session() const { return session_; }

 private:
  Ort::RunOptions run_options() const;

  std::filesystem::path path_;
  bool shrink_arena_after_run_ = false;
  mutable Ort::Session session_{nullptr};  // Run is non-const in the C++ API but thread-safe
};

// Tensors over caller-owned memory (no copy); the memory must outlive the value.
Ort::Value tensor_view(std::span<float> data, const std::vector<std::int64_t>& shape);
Ort::Value tensor_view(std::span<std::int64_t> data, const std::vector<std::int64_t>& shape);
std::vector<std::int64_t> tensor_shape(const Ort::Value& value);

}  // namespace q3vl
