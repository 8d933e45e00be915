// Text decoder speed on a package: prefill tokens/s and decode tokens/s, with decode set against
// the memory-bandwidth bound (weights and KV cache read per token / measured read bandwidth).
// With --batch, also batched decode (issue 14): B sequences, each after its own prompt, stepping
// together; aggregate tokens/s and the step time against one sequence's.
//   decode_bench PACKAGE [--prompt N] [--decode N] [--threads N] [--batch 1,2,4,8] [--decoder text.onnx]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "engine/sampler.h"
#include "bench_util.h"
#include "package/format.h"
#include "math/rope_index.h"
#include "package/package.h"
#include "package/prepacked_text.h"
#include "util/cpu_cores.h"
#include "util/files.h"
#include "engine/text_models.h"

namespace {

using namespace q3vl;

struct Options {
  std::int64_t prompt = 128;
  std::int64_t decode = 32;
  int threads = 0;
  std::vector<std::int64_t> batches;
  bool plain_text_onnx = false;  // --decoder text.onnx: not text.kernels.onnx or the prepacked decoder
};

// Counts from 1 to 1,000,000 (the prompt also sizes the warm-up and the caches).
std::int64_t count_flag(const std::string& flag, const char* text) { return bench::number_flag(flag, text, 1, 1000000); }

Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--prompt") options.prompt = count_flag("--prompt", argv[i + 1]);
    if (std::string(argv[i]) == "--decode") options.decode = count_flag("--decode", argv[i + 1]);
    if (std::string(argv[i]) == "--threads") options.threads = static_cast<int>(bench::number_flag("--threads", argv[i + 1], 0, 256));
    if (std::string(argv[i]) == "--decoder") options.plain_text_onnx = std::string(argv[i + 1]) == "text.onnx";
    if (std::string(argv[i]) == "--batch") {
      for (const char* p = argv[i + 1]; *p != 0;) {
        char* end = nullptr;
        options.batches.push_back(std::strtoll(p, &end, 10));
        p = *end == ',' ? end + 1 : end;
        if (end == p && *end != 0) break;
      }
    }
  }
  return options;
}

std::vector<std::int64_t> positions(std::int64_t begin, std::int64_t end) { return text_position_ids(begin, end); }

struct Timings {
  double prefill_s = 0;
  double decode_s = 0;
};

// Prefill of `prompt` tokens, then `decode` greedy steps, after a warm-up prompt (other tokens, at
// least as many) on a cache of its own.
Timings measure(const EmbeddingModel& embedding, const DecoderModel& decoder_model, const Options& options) {
  KvCache cache = decoder_model.new_cache(options.prompt + options.decode + 8);
  std::vector<std::int64_t> ids;
  for (std::int64_t i = 0; i < options.prompt; ++i) ids.push_back((i * 7919 + 13) % 150000);
  {
    // The warm-up is a prompt of other tokens, as long as the timed one and at least 256. Besides
    // the session's first allocations, this process's first read of each weight page is slow (~2 us
    // a 4 KB page on this VM, a cost of new page tables that MADV_POPULATE_READ does not remove), and
    // a MoE prompt's tokens reach nearly every expert: neither the timed prompt nor the decode steps
    // after a short one pay it. llama-bench times after a warm-up run too.
    const std::int64_t warm_tokens = std::max<std::int64_t>(options.prompt, 256);
    std::vector<std::int64_t> other;
    for (std::int64_t i = 0; i < warm_tokens; ++i) other.push_back((i * 104729 + 7) % 150000);
    KvCache warm = decoder_model.new_cache(warm_tokens + 8);
    decoder_model.forward(warm, embedding.embed(other, nullptr), positions(0, warm_tokens));
  }
  Timings timings;
  const auto prefill_start = std::chrono::steady_clock::now();
  DecoderOutput out = decoder_model.forward(cache, embedding.embed(ids, nullptr), positions(0, options.prompt));
  timings.prefill_s = bench::seconds_since(prefill_start);
  const auto decode_start = std::chrono::steady_clock::now();
  for (std::int64_t step = 0; step < options.decode; ++step) {
    const std::int64_t token = argmax(out.logits);
    const std::int64_t at = options.prompt + step;
    out = decoder_model.forward(cache, embedding.embed(std::vector<std::int64_t>{token}, nullptr), positions(at, at + 1));
  }
  timings.decode_s = bench::seconds_since(decode_start);
  return timings;
}

struct BatchRun {
  double step_seconds = 0;
  std::int64_t agreeing = 0, compared = 0;  // greedy tokens equal to the same sequence run alone
};

// Greedy tokens of one sequence alone: its prompt, then `decode` steps.
std::vector<std::int64_t> greedy_alone(const EmbeddingModel& embedding, const DecoderModel& decoder_model,
                                       const std::vector<std::int64_t>& prompt, std::int64_t decode) {
  const auto n = static_cast<std::int64_t>(prompt.size());
  KvCache cache = decoder_model.new_cache(n + decode + 8);
  DecoderOutput out = decoder_model.forward(cache, embedding.embed(prompt, nullptr), positions(0, n));
  std::vector<std::int64_t> tokens = {argmax(out.logits)};
  for (std::int64_t step = 0; step < decode; ++step) {
    out = decoder_model.forward(cache, embedding.embed(std::vector<std::int64_t>{tokens.back()}, nullptr), positions(n + step, n + step + 1));
    tokens.push_back(argmax(out.logits));
  }
  return tokens;
}

// B sequences of `prompt` tokens each (different tokens), then `decode` batched steps: seconds per
// step, and how many greedy tokens equal each sequence's alone (until the first difference).
BatchRun batched_decode(const EmbeddingModel& embedding, const DecoderModel& decoder_model, const Options& options,
                        std::int64_t batch) {
  auto pool = std::make_shared<KvPool>(decoder_model.kv_layout(), batch, options.prompt + options.decode + 8);
  std::vector<KvCache> caches;
  std::vector<std::int64_t> tokens;
  std::vector<std::vector<std::int64_t>> prompts, generated(static_cast<std::size_t>(batch));
  for (std::int64_t b = 0; b < batch; ++b) {
    caches.emplace_back(pool, options.prompt + options.decode + 8);
    std::vector<std::int64_t>& ids = prompts.emplace_back();
    for (std::int64_t i = 0; i < options.prompt; ++i) ids.push_back((i * 7919 + 13 + b * 101) % 150000);
    const DecoderOutput out = decoder_model.forward(caches.back(), embedding.embed(ids, nullptr), positions(0, options.prompt));
    tokens.push_back(argmax(out.logits));
  }
  std::vector<KvCache*> batch_caches;
  for (KvCache& cache : caches) batch_caches.push_back(&cache);
  double total = 0;
  for (std::int64_t step = 0; step <= options.decode; ++step) {
    for (std::int64_t b = 0; b < batch; ++b) generated[static_cast<std::size_t>(b)].push_back(tokens[static_cast<std::size_t>(b)]);
    if (step == options.decode) break;
    const std::int64_t at = options.prompt + step;
    const std::vector<float> embeds = embedding.embed(tokens, nullptr);
    std::vector<std::int64_t> batch_positions(static_cast<std::size_t>(3 * batch), at);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<float> logits = decoder_model.forward_batch(batch_caches, embeds, batch_positions);
    if (step > 0) total += bench::seconds_since(start);  // the first step is a warm-up (new shapes)
    const std::size_t per = logits.size() / static_cast<std::size_t>(batch);
    for (std::int64_t b = 0; b < batch; ++b) {
      tokens[static_cast<std::size_t>(b)] =
          argmax(std::span<const float>(logits).subspan(static_cast<std::size_t>(b) * per, per));
    }
  }
  BatchRun run;
  run.step_seconds = total / static_cast<double>(std::max<std::int64_t>(options.decode - 1, 1));
  if (batch == 1) return run;  // alone is what batch 1 is
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::vector<std::int64_t> alone = greedy_alone(embedding, decoder_model, prompts[static_cast<std::size_t>(b)], options.decode);
    const std::vector<std::int64_t>& mine = generated[static_cast<std::size_t>(b)];
    std::size_t same = 0;
    while (same < mine.size() && mine[same] == alone[same]) ++same;
    run.agreeing += static_cast<std::int64_t>(same);
    run.compared += static_cast<std::int64_t>(mine.size());
  }
  return run;
}

// The share of text.onnx's weights one decoded token reads: all of them for a dense model; for a
// MoE model the experts only k of E at a time (estimated from parameter counts: every weight
// class is quantized alike).
double weights_read_per_token(const TextConfig& t) {
  if (!t.moe) return 1.0;
  const double H = static_cast<double>(t.hidden_size), D = static_cast<double>(t.head_dim);
  const double attention = H * D * static_cast<double>(2 * t.num_attention_heads + 2 * t.num_key_value_heads);
  const double dense_mlp = 3.0 * H * static_cast<double>(t.intermediate_size);
  const double one_expert = 3.0 * H * static_cast<double>(t.moe->intermediate_size);
  const double E = static_cast<double>(t.moe->experts), k = static_cast<double>(t.moe->experts_per_token);
  double total = static_cast<double>(t.vocab_size) * H;  // lm_head
  double read = total;
  for (std::int64_t layer = 0; layer < t.num_hidden_layers; ++layer) {
    const bool sparse = t.sparse_layer(layer);
    total += attention + (sparse ? E * one_expert + E * H : dense_mlp);
    read += attention + (sparse ? k * one_expert + E * H : dense_mlp);
  }
  return read / total;
}

void run(const char* package_dir, const Options& options) {
  const Package package = Package::open(package_dir);
  const ModelConfig& config = package.config();
  const double bandwidth = bench::read_bandwidth_gbs(options.threads > 0 ? options.threads : available_physical_cores());
  // Per decoded token the decoder reads its weights once (a MoE model: only the chosen experts');
  // the embedding reads one row.
  // What `q3vl run` loads (text.kernels.onnx, or the decoder `q3vl prepack` wrote for this CPU when
  // it matches), unless --decoder text.onnx.
  const TextModelChoice text_model =
      choose_text_model(package, Ort::GetVersionString(), !options.plain_text_onnx, !options.plain_text_onnx);
  if (!text_model.note.empty()) std::printf("%s\n", text_model.note.c_str());
  double weight_bytes = static_cast<double>(onnx_model_bytes(package.text_model()));
  if (text_model.kernels) {
    // Its float16 scales replace text.onnx.data's float32 ones, which it no longer reads.
    std::error_code ec;
    const double half_scales = static_cast<double>(std::filesystem::file_size(package.dir() / package::kKernelTextData, ec));
    if (!ec) weight_bytes -= half_scales;
  }
  OnnxEnvironment env(options.threads);
  EmbeddingModel embedding(env, package.embedding_model(), config);
  SessionOptions decoder_options;
  decoder_options.prepack_weights = !package.float_decoder();
  const DecoderModel decoder_model(env, text_model.model, config, decoder_options);
  // Each step also reads the KV cache of every position so far (on average the prompt and half the
  // decoded tokens), in the decoder's cache type.
  const KvLayout kv = decoder_model.kv_layout();
  const double cache_bytes = static_cast<double>(options.prompt + options.decode / 2) * static_cast<double>(kv.bytes_per_token());
  const double bytes_per_token = weight_bytes * weights_read_per_token(config.text) + cache_bytes;
  std::printf("machine: read bandwidth %.1f GB/s; %s weights %.2f GB; %.2f GB read per token (the float%d KV cache %.0f MB of it) -> decode bound %.1f tok/s\n",
              bandwidth, text_model.model.filename().c_str(), weight_bytes / 1e9, bytes_per_token / 1e9, static_cast<int>(kv.element_bytes * 8),
              cache_bytes / 1e6, bandwidth * 1e9 / bytes_per_token);

  const Timings timings = measure(embedding, decoder_model, options);
  const double decode_rate = static_cast<double>(options.decode) / timings.decode_s;
  std::printf("prefill %lld tokens: %.0f ms (%.1f tok/s)\n", static_cast<long long>(options.prompt),
              timings.prefill_s * 1000, static_cast<double>(options.prompt) / timings.prefill_s);
  std::printf("decode %lld tokens: %.1f tok/s (%.0f%% of the bandwidth bound)\n", static_cast<long long>(options.decode),
              decode_rate, 100.0 * decode_rate * bytes_per_token / (bandwidth * 1e9));
  double single_step = 0;
  for (std::int64_t batch : options.batches) {
    if (batch < 1) continue;
    const BatchRun run = batched_decode(embedding, decoder_model, options, batch);
    const double step = run.step_seconds;
    if (single_step == 0) single_step = batch == 1 ? step : 1.0 / decode_rate;
    std::printf("batched decode, %lld sequences: step %.1f ms (%.2fx one sequence's), %.1f tok/s in all (%.2fx)",
                static_cast<long long>(batch), step * 1000, step / single_step, static_cast<double>(batch) / step,
                static_cast<double>(batch) / step * single_step);
    if (run.compared > 0) {
      std::printf("; greedy tokens equal to each alone: %lld/%lld", static_cast<long long>(run.agreeing), static_cast<long long>(run.compared));
    }
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: decode_bench PACKAGE [--prompt N] [--decode N] [--threads N] [--batch LIST] [--decoder text.onnx]\n");
    return 2;
  }
  try {
    run(argv[1], parse_options(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decode_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
