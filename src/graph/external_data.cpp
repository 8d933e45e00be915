#include "graph/external_data.h"

#include <algorithm>

#include "q3vl/error.h"

namespace q3vl::graph {
namespace {

constexpr std::uint64_t kBlockBytes = std::uint64_t{2} << 20;  // a 2 MB page (x86-64, arm64 with 4 KB pages)

}  // namespace

ExternalDataWriter::ExternalDataWriter(const std::filesystem::path& path, std::string location,
                                       std::uint64_t alignment)
    : path_(path), location_(std::move(location)), alignment_(alignment) {
  out_.rdbuf()->pubsetbuf(nullptr, 0);  // before open: no second buffer behind `block_`
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw Error("cannot create " + path_.string());
  block_.reserve(kBlockBytes);
}

ExternalDataWriter::~ExternalDataWriter() {
  // A writer dropped without close() (an export that failed) still leaves what it was given, as
  // std::ofstream would; errors here have nowhere to go.
  if (out_.is_open() && !block_.empty()) out_.write(reinterpret_cast<const char*>(block_.data()), static_cast<std::streamsize>(block_.size()));
}

void ExternalDataWriter::write_block() {
  out_.write(reinterpret_cast<const char*>(block_.data()), static_cast<std::streamsize>(block_.size()));
  if (!out_) throw Error("write failed on " + path_.string() + " (disk full?)");
  block_.clear();
}

void ExternalDataWriter::put(const std::uint8_t* bytes, std::uint64_t count) {
  while (count > 0) {
    const std::uint64_t n = std::min<std::uint64_t>(count, kBlockBytes - block_.size());
    block_.insert(block_.end(), bytes, bytes + n);
    bytes += n;
    count -= n;
    if (block_.size() == kBlockBytes) write_block();
  }
}

void ExternalDataWriter::pad_to_alignment() {
  const std::uint64_t padding = (alignment_ - size_ % alignment_) % alignment_;
  static constexpr std::uint8_t kZeros[4096] = {};
  for (std::uint64_t left = padding; left > 0;) {
    const std::uint64_t n = std::min<std::uint64_t>(left, sizeof kZeros);
    put(kZeros, n);
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
  put(bytes.data(), bytes.size());
  size_ += bytes.size();
  pending_ -= bytes.size();
}

void ExternalDataWriter::close() {
  if (pending_ != 0) throw Error(path_.string() + ": last tensor was not completed");
  if (!block_.empty()) write_block();
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
