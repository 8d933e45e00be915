#include "export/weights.h"

#include <algorithm>

#include "math/half_float.h"
#include "model/expert_layout.h"
#include "q3vl/error.h"

namespace q3vl {
namespace {

constexpr std::size_t kSliceElements = 1 << 20;

std::span<const std::uint8_t> as_bytes(std::span<const float> values) {
  return {reinterpret_cast<const std::uint8_t*>(values.data()), values.size() * sizeof(float)};
}

}  // namespace

WeightFormat parse_weight_format(const std::string& text) {
  if (text == "fp32") return WeightFormat::F32;
  if (text == "int8") return WeightFormat::Int8;
  if (text == "int4") return WeightFormat::Int4;
  throw InvalidInput("unknown weight precision \"" + text + "\" (expected fp32, int8 or int4)");
}

std::string to_string(WeightFormat format) {
  switch (format) {
    case WeightFormat::F32: return "fp32";
    case WeightFormat::Int8: return "int8";
    case WeightFormat::Int4: return "int4";
  }
  return "?";
}

void WeightWriter::read_once(const TensorView& tensor, std::size_t first, std::span<float> out) {
  read_as_float(tensor, first, out);
  if (out.empty()) return;
  // Tensors are read front to back in pieces: without this, every piece of one stayed mapped until
  // its end (a 235B-A22B layer's expert stack is 3.2 GB).
  const std::size_t element_bytes = tensor.bytes.size() / static_cast<std::size_t>(tensor.element_count());
  checkpoint_.release(TensorView{tensor.info, tensor.bytes.subspan(first * element_bytes, out.size() * element_bytes)});
}

void WeightWriter::done_with(const TensorView& tensor) {
  if (progress_ != nullptr) progress_->advance(tensor.bytes.size());
  checkpoint_.release(tensor);
}

void WeightWriter::append_values(std::span<const float> values, graph::ElemType type) {
  if (type == graph::kFloat) {
    g_.external()->append_piece(as_bytes(values));
    return;
  }
  std::vector<std::uint16_t> halves(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) halves[i] = float_to_fp16(values[i]);
  g_.external()->append_piece({reinterpret_cast<const std::uint8_t*>(halves.data()), halves.size() * 2});
}

std::string WeightWriter::small_initializer(const std::string& name, const std::vector<std::int64_t>& dims,
                                            std::span<const float> values, graph::ElemType type) {
  if (type == graph::kFloat) return g_.initializer(name, dims, values);
  std::vector<std::uint16_t> halves(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) halves[i] = float_to_fp16(values[i]);
  return g_.initializer(name, type, dims, {reinterpret_cast<const std::uint8_t*>(halves.data()), halves.size() * 2});
}

std::string WeightWriter::float_tensor(const std::string& checkpoint_name) { return float_tensor(checkpoint_name, float_type_); }

std::string WeightWriter::float_tensor(const std::string& checkpoint_name, graph::ElemType type) {
  const TensorView tensor = checkpoint_.tensor(checkpoint_name);
  const std::size_t count = static_cast<std::size_t>(tensor.element_count());
  if (count * sizeof(float) < 1024 || g_.external() == nullptr) {
    const std::vector<float> values = read_as_float(tensor);
    return small_initializer(checkpoint_name + (type == graph::kFloat ? "" : ".f16"), tensor.shape(), values, type);
  }
  const std::string name = g_.streamed_initializer(checkpoint_name + (type == graph::kFloat ? "" : ".f16"), type, tensor.shape());
  std::vector<float> slice(std::min(count, kSliceElements));
  for (std::size_t done = 0; done < count;) {
    const std::size_t n = std::min(kSliceElements, count - done);
    read_once(tensor, done, std::span<float>(slice.data(), n));
    append_values(std::span<const float>(slice.data(), n), type);
    done += n;
  }
  done_with(tensor);
  return name;
}

std::string WeightWriter::transposed_float(const std::vector<Rows>& parts, const std::string& name) {
  const std::int64_t in_features = parts.front().in;
  std::int64_t out_features = 0;
  for (const Rows& part : parts) out_features += part.out;
  const std::string initializer = g_.streamed_initializer(name, float_type_, {in_features, out_features});
  // Transpose in bands of input features: read a [out, band] slab row by row, write [band, out].
  constexpr std::int64_t kBand = 64;
  std::vector<float> row_part(kBand);
  std::vector<float> band_out(static_cast<std::size_t>(kBand * out_features));
  for (std::int64_t i0 = 0; i0 < in_features; i0 += kBand) {
    const std::int64_t band = std::min(kBand, in_features - i0);
    std::int64_t column = 0;
    for (const Rows& part : parts) {
      for (std::int64_t o = 0; o < part.out; ++o, ++column) {
        read_as_float(part.tensor, static_cast<std::size_t>(o * part.in + i0),
                      std::span<float>(row_part.data(), static_cast<std::size_t>(band)));
        for (std::int64_t i = 0; i < band; ++i) {
          band_out[static_cast<std::size_t>(i * out_features + column)] = row_part[static_cast<std::size_t>(i)];
        }
      }
    }
    append_values(std::span<const float>(band_out.data(), static_cast<std::size_t>(band * out_features)), float_type_);
  }
  return initializer;
}

void WeightWriter::for_each_expert(const std::string& checkpoint_name, std::int64_t experts, std::int64_t out,
                                   std::int64_t in, std::span<const std::int64_t> rows,
                                   const std::function<void(std::span<const float>)>& use) {
  const TensorView tensor = checkpoint_.tensor(checkpoint_name);
  const ExpertLayout layout = expert_layout(tensor.shape(), experts, out, in, checkpoint_name);
  if (static_cast<std::int64_t>(rows.size()) != out) {
    throw InvalidInput("expert row order for " + checkpoint_name + " has the wrong length");
  }
  // One expert at a time (30B-A3B: 1536 x 2048 floats): read it whole, hand on its rows reordered.
  const std::size_t per_expert = static_cast<std::size_t>(out * in);
  std::vector<float> source(per_expert);
  std::vector<float> target(per_expert);
  for (std::int64_t e = 0; e < experts; ++e) {
    read_once(tensor, static_cast<std::size_t>(e) * per_expert, source);
    for (std::int64_t r = 0; r < out; ++r) {
      const std::int64_t from = rows[static_cast<std::size_t>(r)];
      for (std::int64_t c = 0; c < in; ++c) {
        // OutIn stores element (row, col) at row * in + col; InOut at col * out + row.
        const std::int64_t at = layout == ExpertLayout::OutIn ? from * in + c : c * out + from;
        target[static_cast<std::size_t>(r * in + c)] = source[static_cast<std::size_t>(at)];
      }
    }
    use(target);
  }
  done_with(tensor);
}

WeightWriter::ExpertStack WeightWriter::expert_matrices(const std::string& checkpoint_name, std::int64_t experts,
                                                        std::int64_t out, std::int64_t in,
                                                        std::span<const std::int64_t> rows, const LinearOptions& options,
                                                        const std::string& name) {
  ExpertStack stack;
  if (options.format == WeightFormat::F32) {
    stack.weights = g_.streamed_initializer(name, float_type_, {experts, out, in});
    for_each_expert(checkpoint_name, experts, out, in, rows, [&](std::span<const float> m) { append_values(m, float_type_); });
    return stack;
  }
  BlockQuantOptions quant;
  quant.bits = options.format == WeightFormat::Int4 ? 4 : 8;
  quant.block_size = options.block_size;
  quant.symmetric = true;  // QMoE's implicit zero point (2^(bits-1)), as MatMulNBits'
  validate(quant);
  if (!options.symmetric) throw Unsupported("asymmetric quantization of MoE experts (" + name + ")");
  if (in * quant.bits % 8 != 0) throw Unsupported("expert rows of " + std::to_string(in) + " values do not fill whole bytes");
  const std::int64_t blocks = (in + quant.block_size - 1) / quant.block_size;
  const std::size_t row_bytes = static_cast<std::size_t>(in * quant.bits / 8);
  const std::size_t padded_row_bytes = static_cast<std::size_t>(blocks * quant.block_size * quant.bits / 8);
  stack.bits = quant.bits;
  stack.block_size = quant.block_size;
  stack.weights = g_.streamed_initializer(name + ".qweight", graph::kUInt8, {experts, out, static_cast<std::int64_t>(row_bytes)});
  std::vector<float> scales;
  for_each_expert(checkpoint_name, experts, out, in, rows, [&](std::span<const float> m) {
    const QuantizedMatrix q = quantize_blocks(m, out, in, quant);
    // MatMulNBits pads each row to whole blocks; QMoE's rows are exactly in * bits / 8 bytes, the
    // same values in the same order (the padding is at a row's end).
    std::vector<std::uint8_t> expert_bytes(static_cast<std::size_t>(out) * row_bytes);
    for (std::int64_t r = 0; r < out; ++r) {
      std::copy_n(q.packed.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(r) * padded_row_bytes), row_bytes,
                  expert_bytes.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(r) * row_bytes));
    }
    g_.external()->append_piece(expert_bytes);
    scales.insert(scales.end(), q.scales.begin(), q.scales.end());
  });
  stack.scales = small_initializer(name + ".scales", {experts, out, blocks}, scales, float_type_);
  return stack;
}

WeightWriter::QuantizedTensors WeightWriter::quantize_rows(const std::vector<Rows>& parts, const std::string& name,
                                                         const LinearOptions& options, bool flat_rows) {
  BlockQuantOptions quant;
  quant.bits = options.format == WeightFormat::Int4 ? 4 : 8;
  quant.block_size = options.block_size;
  quant.symmetric = options.symmetric;
  validate(quant);
  const std::int64_t K = parts.front().in;
  std::int64_t N = 0;
  for (const Rows& part : parts) N += part.out;
  const std::int64_t blocks = (K + quant.block_size - 1) / quant.block_size;
  const std::int64_t blob = quant.block_size * quant.bits / 8;
  const std::vector<std::int64_t> dims =
      flat_rows ? std::vector<std::int64_t>{N, blocks * blob} : std::vector<std::int64_t>{N, blocks, blob};
  QuantizedTensors out{g_.streamed_initializer(name + ".qweight", graph::kUInt8, dims), "", "", N, K, quant.bits,
                       quant.block_size};
  std::vector<float> scales;
  std::vector<std::uint8_t> zero_points;
  // Rows are independent: quantize a slab of rows at a time, append its packed bytes.
  const std::int64_t rows_per_slab = std::max<std::int64_t>(1, static_cast<std::int64_t>(kSliceElements) / K);
  std::vector<float> slab;
  for (const Rows& part : parts) {
    for (std::int64_t r0 = 0; r0 < part.out; r0 += rows_per_slab) {
      const std::int64_t rows = std::min(rows_per_slab, part.out - r0);
      slab.resize(static_cast<std::size_t>(rows * K));
      read_once(part.tensor, static_cast<std::size_t>(r0 * K), slab);
      const QuantizedMatrix q = quantize_blocks(slab, rows, K, quant);
      g_.external()->append_piece(q.packed);
      scales.insert(scales.end(), q.scales.begin(), q.scales.end());
      zero_points.insert(zero_points.end(), q.zero_points.begin(), q.zero_points.end());
    }
  }
  out.scales = small_initializer(name + ".scales", {N, blocks}, scales, float_type_);
  if (!quant.symmetric) {
    const std::int64_t zp_bytes = (blocks * quant.bits + 7) / 8;
    out.zero_points = g_.initializer(name + ".zero_points", graph::kUInt8, {N, zp_bytes}, zero_points);
  }
  return out;
}

std::string WeightWriter::quantized(const std::string& x, const std::vector<Rows>& parts, const std::string& name,
                                    const LinearOptions& options, const std::string& hint) {
  const QuantizedTensors q = quantize_rows(parts, name, options, /*flat_rows=*/false);
  std::vector<std::string> inputs = {x, q.packed, q.scales};
  if (!q.zero_points.empty()) inputs.push_back(q.zero_points);
  return g_.op("MatMulNBits", inputs,
               {{"K", q.cols}, {"N", q.rows}, {"bits", q.bits}, {"block_size", q.block_size},
                {"accuracy_level", options.accuracy_level}},
               graph::kMicrosoftDomain, hint);
}

std::string WeightWriter::gather_rows(const std::string& indices, const std::string& table_name,
                                      const LinearOptions& options) {
  const TensorView table = checkpoint_.tensor(table_name);
  if (table.shape().size() != 2) throw InvalidInput("embedding table " + table_name + " is not 2-D");
  const std::int64_t width = table.shape()[1];
  // GatherBlockQuantized needs whole blocks per row; other widths (tiny test models) stay float.
  if (options.format == WeightFormat::F32 || width % options.block_size != 0) {
    return g_.op("Gather", {float_tensor(table_name), indices});
  }
  const QuantizedTensors q = quantize_rows({Rows{table, table.shape()[0], width}}, table_name, options, /*flat_rows=*/true);
  done_with(table);
  std::vector<std::string> inputs = {q.packed, indices, q.scales};
  if (!q.zero_points.empty()) inputs.push_back(q.zero_points);
  return g_.op("GatherBlockQuantized", inputs,
               {{"gather_axis", std::int64_t{0}}, {"quantize_axis", std::int64_t{1}}, {"block_size", q.block_size},
                {"bits", q.bits}},
               graph::kMicrosoftDomain, "embed_tokens");
}

std::string WeightWriter::matmul(const std::string& x, const std::vector<Rows>& parts, const LinearOptions& options,
                                 const std::string& hint) {
  std::string name = parts.front().tensor.name();
  for (std::size_t i = 1; i < parts.size(); ++i) name += "+" + parts[i].tensor.name();
  // Named steps, not one conditional expression: a write error thrown from inside it (disk full)
  // unwound its temporaries in an order GCC's AddressSanitizer reports as use-after-scope.
  std::string y;
  if (options.format == WeightFormat::F32) {
    const std::string weight = transposed_float(parts, name + ".T");
    y = g_.op("MatMul", {x, weight}, {}, "", hint);
  } else {
    y = quantized(x, parts, name, options, hint);
  }
  for (const Rows& part : parts) done_with(part.tensor);
  return y;
}

std::string WeightWriter::linear(const std::string& x, const std::string& weight_name, const std::string& bias_name,
                                 const LinearOptions& options, const std::string& hint) {
  const TensorView weight = checkpoint_.tensor(weight_name);
  if (weight.shape().size() != 2) throw InvalidInput("linear weight " + weight_name + " is not 2-D");
  return linear(x, weight, weight.shape()[0], weight.shape()[1], bias_name, options, hint);
}

std::string WeightWriter::linear(const std::string& x, const TensorView& weight, std::int64_t out_features,
                                 std::int64_t in_features, const std::string& bias_name, const LinearOptions& options,
                                 const std::string& hint) {
  if (out_features * in_features != weight.element_count()) {
    throw InvalidInput("weight " + weight.name() + " does not hold " + std::to_string(out_features) + " x " +
                       std::to_string(in_features) + " values");
  }
  std::string y = matmul(x, {Rows{weight, out_features, in_features}}, options, hint);
  if (!bias_name.empty()) y = g_.op("Add", {y, float_tensor(bias_name)}, {}, "", hint + "_bias");
  return y;
}

std::vector<std::string> WeightWriter::stacked_linear(const std::string& x, const std::vector<std::string>& weights,
                                                      const LinearOptions& options, const std::string& hint) {
  std::vector<Rows> parts;
  std::vector<std::int64_t> sizes;
  for (const std::string& name : weights) {
    const TensorView weight = checkpoint_.tensor(name);
    if (weight.shape().size() != 2 || (!parts.empty() && weight.shape()[1] != parts.front().in)) {
      throw InvalidInput("weights stacked in one matmul must be 2-D with equal input sizes: " + name);
    }
    parts.push_back(Rows{weight, weight.shape()[0], weight.shape()[1]});
    sizes.push_back(weight.shape()[0]);
  }
  const std::string y = matmul(x, parts, options, hint);
  return g_.node("Split", {y, g_.constant_i64(sizes)}, {{"axis", std::int64_t{-1}}}, static_cast<int>(sizes.size()), "",
                 hint + "_split");
}

}  // namespace q3vl
