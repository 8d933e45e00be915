#include "graph/external_data.h"

#include <vector>

#include "q3vl/error.h"

namespace q3vl::graph {

ExternalDataWriter::ExternalDataWriter(const std::filesystem::path& path, std::string location,
                                       std::uint64_t alignment)
    : path_(path), location_(std::move(location)), alignment_(alignment) {
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw Error("cannot create " + path_.string());
}

void ExternalDataWriter::pad_to_alignment() {
  const std::uint64_t padding = (alignment_ - size_ % alignment_) % alignment_;
  static constexpr char kZeros[4096] = {};
  for (std::uint64_t left = padding; left > 0;) {
    const std::uint64_t n = std::min<std::uint64_t>(left, sizeof kZeros);
    out_.write(kZeros, static_cast<std::streamsize>(n));
    left -= n;
  }
  size_ += padding;
}

ExternalDataWriter::Range ExternalDataWriter::append(std::span<const std::uint8_t> bytes) {
  const Range range = begin_tensor(bytes.size());
  append_piece(bytes);
  return range;
}

ExternalDataWriter::Range ExternalDataWriter::begin_tensor(std::uint64_t length) {
  if (pending_ != 0) throw Error(path_.string() + ": previous tensor was not completed");
  pad_to_alignment();
  pending_ = length;
  return Range{size_, length};
}

void ExternalDataWriter::append_piece(std::span<const std::uint8_t> bytes) {
  if (bytes.size() > pending_) throw Error(path_.string() + ": more bytes than the tensor declared");
  out_.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out_) throw Error("write failed on " + path_.string() + " (disk full?)");
  size_ += bytes.size();
  pending_ -= bytes.size();
}

void ExternalDataWriter::close() {
  if (pending_ != 0) throw Error(path_.string() + ": last tensor was not completed");
  out_.close();
  if (!out_) throw Error("write failed on " + path_.string() + " (disk full?)");
}

void point_to_external(onnx::TensorProto& tensor, const ExternalDataWriter& writer, ExternalDataWriter::Range range) {
  tensor.set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
  auto add = [&tensor](const std::string& key, const std::string& value) {
    onnx::StringStringEntryProto* entry = tensor.add_external_data();
    entry->set_key(key);
    entry->set_value(value);
  };
  add("location", writer.location());
  add("offset", std::to_string(range.offset));
  add("length", std::to_string(range.length));
}

}  // namespace q3vl::graph
