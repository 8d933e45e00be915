#pragma once
// The side file that holds an ONNX model's weights ("external data"). Weights are appended as the
// graph is built and never kept in memory; offsets are aligned so ONNX Runtime can map them. The
// file goes to disk in whole 2 MB blocks at 2 MB offsets: Linux's page cache (ext4, xfs) then keeps
// it in 2 MB pages, which a process that maps the weights (ONNX Runtime) maps with one page-table
// entry each instead of 512. Mapping 4 KB pages cost ~0.45 s a GB at a run's first touch on the
// virtual machines we measure on; 2 MB pages, ~0.02 s.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

namespace q3vl::graph {

class ExternalDataWriter {
 public:
  struct Range {
    std::uint64_t offset;
    std::uint64_t length;
  };

  // `path` is where the file is written; `location` is the name the model records (relative to
  // the .onnx file, normally just the file name).
  ExternalDataWriter(const std::filesystem::path& path, std::string location, std::uint64_t alignment = 4096);
  ~ExternalDataWriter();
  ExternalDataWriter(const ExternalDataWriter&) = delete;
  ExternalDataWriter& operator=(const ExternalDataWriter&) = delete;

  const std::string& location() const { return location_; }
  Range append(std::span<const std::uint8_t> bytes);
  // Starts a tensor whose bytes arrive in pieces (append_piece), for tensors produced in chunks.
  Range begin_tensor(std::uint64_t length);
  void append_piece(std::span<const std::uint8_t> bytes);
  void close();
  std::uint64_t size() const { return size_; }

 private:
  void pad_to_alignment();
  // Appends to the block; each full block goes to the file.
  void put(const std::uint8_t* bytes, std::uint64_t count);
  void write_block();

  std::filesystem::path path_;
  std::string location_;
  std::uint64_t alignment_;
  std::ofstream out_;                 // unbuffered: `block_` is the buffer
  std::vector<std::uint8_t> block_;  // the file's bytes from the last whole block on
  std::uint64_t size_ = 0;
  std::uint64_t pending_ = 0;  // bytes still owed to the tensor started by begin_tensor
};

// Marks `tensor` as stored in `writer`'s file at `range`.
void point_to_external(onnx::TensorProto& tensor, const ExternalDataWriter& writer, ExternalDataWriter::Range range);

}  // namespace q3vl::graph
