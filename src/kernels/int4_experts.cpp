#include "kernels/int4_experts.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/int4_rows.h"
#include "kernels/row_chunks.h"
#include "kernels/swiglu.h"
#include "q3vl/error.h"

namespace q3vl::kernels {

namespace {

// Weight rows per task of a prompt's experts (decode steps go in chunks, row_chunks.h).
constexpr std::int64_t kRowsPerTask = 64;
// Tokens per pass, bounding the working buffers whatever the prompt length.
constexpr std::int64_t kTokensPerPass = 256;

struct Pass {
  std::vector<std::int32_t> experts;           // [n, k]
  std::vector<float> weights;                  // [n, k]
  std::vector<std::int64_t> first_member;      // [E + 1]: expert e's members are first_member[e]..[e+1]
  std::vector<std::int64_t> member_token;      // [n*k]: the token (in the pass) of each member
  std::vector<std::int64_t> member_of_choice;  // [n*k]: member row of token t's j-th choice
  std::vector<std::int64_t> member_rows;       // 0..n*k-1
  std::vector<std::int64_t> active;            // experts with members
};

void group_by_expert(Pass& p, std::int64_t n, std::int64_t k, std::int64_t E) {
  p.first_member.assign(static_cast<std::size_t>(E + 1), 0);
  for (std::int64_t c = 0; c < n * k; ++c) ++p.first_member[static_cast<std::size_t>(p.experts[static_cast<std::size_t>(c)] + 1)];
  std::partial_sum(p.first_member.begin(), p.first_member.end(), p.first_member.begin());
  std::vector<std::int64_t> next(p.first_member.begin(), p.first_member.end() - 1);
  p.member_token.resize(static_cast<std::size_t>(n * k));
  p.member_of_choice.resize(static_cast<std::size_t>(n * k));
  for (std::int64_t c = 0; c < n * k; ++c) {  // tokens in order within each expert
    const std::int64_t m = next[static_cast<std::size_t>(p.experts[static_cast<std::size_t>(c)])]++;
    p.member_token[static_cast<std::size_t>(m)] = c / k;
    p.member_of_choice[static_cast<std::size_t>(c)] = m;
  }
  p.member_rows.resize(static_cast<std::size_t>(n * k));
  std::iota(p.member_rows.begin(), p.member_rows.end(), std::int64_t{0});
  p.active.clear();
  for (std::int64_t e = 0; e < E; ++e) {
    if (p.first_member[static_cast<std::size_t>(e + 1)] > p.first_member[static_cast<std::size_t>(e)]) p.active.push_back(e);
  }
}

// Every active expert's rows of `m` against its members' activation rows (`rows_of_member` maps a
// member to its row in `activations`): out[member * m.rows + r]. When every expert has few members
// (a decode step) the reading of the weights bounds the time, and the experts' rows go in long
// chunks (row_chunks.h); otherwise in tasks of kRowsPerTask rows.
void expert_products(const Pass& p, const Int4Matrices& m, const QuantizedActivations& activations,
                     const std::vector<std::int64_t>& rows_of_member, float* out, RowsKernel kernel,
                     const ParallelFor& parallel) {
  const auto rows_job = [&](std::int64_t e, std::int64_t r0, std::int64_t rows) {
    const std::int64_t first = p.first_member[static_cast<std::size_t>(e)];
    RowsJob job;
    point_at_rows(job, m, e, r0);
    job.rows = rows;
    job.activations = &activations;
    job.tokens = rows_of_member.data() + first;
    job.token_count = p.first_member[static_cast<std::size_t>(e + 1)] - first;
    job.out = out + first * m.rows + r0;
    job.out_stride = m.rows;
    kernel(job);
  };
  std::int64_t most_members = 0;
  for (const std::int64_t e : p.active) {
    most_members = std::max(most_members, p.first_member[static_cast<std::size_t>(e + 1)] - p.first_member[static_cast<std::size_t>(e)]);
  }
  if (most_members <= kStreamingTokens) {
    RowsJob shape;
    point_at_rows(shape, m, 0, 0);
    const std::vector<std::int64_t> rows(p.active.size(), m.rows);
    for_each_row_chunk(rows, shape.row_bytes_with_scales(), parallel,
                       [&](std::size_t a, std::int64_t r0, std::int64_t count) { rows_job(p.active[a], r0, count); });
    return;
  }
  const std::int64_t chunks = (m.rows + kRowsPerTask - 1) / kRowsPerTask;
  parallel(p.active.size() * static_cast<std::size_t>(chunks), [&](std::size_t task) {
    const std::int64_t r0 = static_cast<std::int64_t>(task % static_cast<std::size_t>(chunks)) * kRowsPerTask;
    rows_job(p.active[task / static_cast<std::size_t>(chunks)], r0, std::min(kRowsPerTask, m.rows - r0));
  });
}

}  // namespace

void route_token(std::span<const float> logits, std::int64_t k, bool normalize, std::int32_t* experts, float* weights) {
  const float top = *std::max_element(logits.begin(), logits.end());
  std::vector<float> p(logits.size());
  float sum = 0.0f;
  for (std::size_t e = 0; e < logits.size(); ++e) sum += p[e] = std::exp(logits[e] - top);
  for (float& v : p) v /= sum;
  std::vector<std::int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](std::int32_t a, std::int32_t b) {
    return p[static_cast<std::size_t>(a)] > p[static_cast<std::size_t>(b)] ||
           (p[static_cast<std::size_t>(a)] == p[static_cast<std::size_t>(b)] && a < b);
  });
  float chosen = 0.0f;
  for (std::int64_t j = 0; j < k; ++j) chosen += p[static_cast<std::size_t>(order[static_cast<std::size_t>(j)])];
  for (std::int64_t j = 0; j < k; ++j) {
    experts[j] = order[static_cast<std::size_t>(j)];
    const float w = p[static_cast<std::size_t>(experts[j])];
    weights[j] = normalize ? w / chosen : w;
  }
}

void check_expert_layer(const ExpertLayer& layer, std::int64_t router_width) {
  const Int4Matrices& up = layer.gate_up;
  const Int4Matrices& down = layer.down;
  const auto fail = [](const std::string& what) { throw InvalidInput("int4 experts: " + what); };
  if (up.experts <= 0 || up.experts != down.experts || up.experts != router_width) {
    fail(std::to_string(up.experts) + " and " + std::to_string(down.experts) + " experts for a router of " +
         std::to_string(router_width));
  }
  if (layer.top_k <= 0 || layer.top_k > up.experts) fail("k = " + std::to_string(layer.top_k) + " of " + std::to_string(up.experts));
  if (up.rows % 2 != 0 || down.cols != up.rows / 2 || down.rows != up.cols) {
    fail("gate_up [" + std::to_string(up.rows) + ", " + std::to_string(up.cols) + "] and down [" + std::to_string(down.rows) +
         ", " + std::to_string(down.cols) + "] are not [2I, H] and [H, I]");
  }
  for (const Int4Matrices* m : {&up, &down}) {
    if ((m->scales == nullptr) == (m->half_scales == nullptr)) fail("give float or half scales, one of the two");
    if (m->cols <= 0 || m->cols % 2 != 0 || !int4_block_supported(m->block)) {
      fail("rows of " + std::to_string(m->cols) + " values in blocks of " + std::to_string(m->block) +
           " (blocks must be a power of two, rows an even length)");
    }
  }
}

void run_int4_experts(const ExpertLayer& layer, const float* x, const float* router_logits, std::int64_t tokens,
                      float* out, const ParallelFor& parallel, Int4Isa isa) {
  const Int4Matrices& up = layer.gate_up;
  const Int4Matrices& down = layer.down;
  const std::int64_t E = up.experts, H = up.cols, I = down.cols, k = layer.top_k;
  const RowsKernel up_kernel = int4_rows_kernel(isa, activation_group(up));
  const RowsKernel down_kernel = int4_rows_kernel(isa, activation_group(down));
  Pass p;
  QuantizedActivations x_q, act_q;
  std::vector<float> gate_up_out, down_out;
  for (std::int64_t t0 = 0; t0 < tokens; t0 += kTokensPerPass) {
    const std::int64_t n = std::min(kTokensPerPass, tokens - t0);
    p.experts.resize(static_cast<std::size_t>(n * k));
    p.weights.resize(static_cast<std::size_t>(n * k));
    for (std::int64_t t = 0; t < n; ++t) {
      route_token(std::span<const float>(router_logits + (t0 + t) * E, static_cast<std::size_t>(E)), k, layer.normalize_top_k,
                  p.experts.data() + t * k, p.weights.data() + t * k);
    }
    group_by_expert(p, n, k, E);
    x_q.reset(n, H, activation_group(up));
    parallel(static_cast<std::size_t>(n), [&](std::size_t t) { x_q.quantize(static_cast<std::int64_t>(t), x + (t0 + static_cast<std::int64_t>(t)) * H); });

    gate_up_out.resize(static_cast<std::size_t>(n * k * 2 * I));
    expert_products(p, up, x_q, p.member_token, gate_up_out.data(), up_kernel, parallel);
    act_q.reset(n * k, I, activation_group(down));
    parallel(static_cast<std::size_t>(n * k), [&](std::size_t m) {
      // SwiGLU in place over the member's interleaved gate/up row (no buffer per member on the hot path).
      float* h = gate_up_out.data() + m * static_cast<std::size_t>(2 * I);
      swiglu_rows(h, 1, I, GateUpLayout::Interleaved, h, isa);
      act_q.quantize(static_cast<std::int64_t>(m), h);
    });
    down_out.resize(static_cast<std::size_t>(n * k * H));
    expert_products(p, down, act_q, p.member_rows, down_out.data(), down_kernel, parallel);

    parallel(static_cast<std::size_t>(n), [&](std::size_t t) {
      float* y = out + (t0 + static_cast<std::int64_t>(t)) * H;
      std::fill(y, y + H, 0.0f);
      for (std::int64_t j = 0; j < k; ++j) {
        const std::size_t choice = t * static_cast<std::size_t>(k) + static_cast<std::size_t>(j);
        const float w = p.weights[choice];
        const float* row = down_out.data() + p.member_of_choice[choice] * H;
        for (std::int64_t h = 0; h < H; ++h) y[h] += w * row[h];
      }
    });
  }
}

}  // namespace q3vl::kernels
