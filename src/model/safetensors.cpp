#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "math/half_float.h"
#include "q3vl/error.h"
#include "util/json_fields.h"

namespace q3vl {
namespace {

using nlohmann::json;

std::uint64_t read_u64_le(const std::uint8_t* p) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

[[noreturn]] void bad(const std::string& label, const std::string& what) {
  throw InvalidInput(label + ": " + what);
}

TensorInfo parse_entry(const std::string& name, const json& entry, std::uint64_t data_size,
                       const std::string& label) {
  const std::string where = "tensor \"" + name + "\"";
  if (!entry.is_object()) bad(label, where + ": header entry is not an object");
  TensorInfo info;
  info.name = name;

  const auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) bad(label, where + ": missing dtype");
  if (!dtype_it->is_string()) bad(label, where + ": dtype must be a string, got " + json_type_name(*dtype_it));
  const auto dtype = dtype_from_name(dtype_it->get<std::string>());
  if (!dtype) bad(label, where + ": unknown dtype \"" + dtype_it->get<std::string>() + "\"");
  info.dtype = *dtype;

  const auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) bad(label, where + ": missing shape");
  if (!shape_it->is_array()) bad(label, where + ": shape must be a list, got " + json_type_name(*shape_it));
  if (shape_it->size() > 64) bad(label, where + ": shape has " + std::to_string(shape_it->size()) + " dimensions");
  for (const json& dim : *shape_it) {
    if (!dim.is_number_unsigned() && !(dim.is_number_integer() && dim.get<std::int64_t>() >= 0)) {
      bad(label, where + ": shape " + shape_it->dump() + " is not a list of non-negative integers");
    }
    if (dim.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) bad(label, where + ": shape dimension out of range");
    info.shape.push_back(dim.get<std::int64_t>());
  }

  const auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
    bad(label, where + ": data_offsets must be two non-negative integers");
  }
  info.begin = (*offsets_it)[0].get<std::uint64_t>();
  info.end = (*offsets_it)[1].get<std::uint64_t>();
  if (info.begin > info.end || info.end > data_size) {
    bad(label, where + ": data_offsets [" + std::to_string(info.begin) + ", " +
                   std::to_string(info.end) + "] fall outside the data section of " +
                   std::to_string(data_size) + " bytes (truncated file?)");
  }
  const auto count = checked_element_count(info.shape);
  const std::uint64_t element_size = dtype_size(info.dtype);
  if (!count || static_cast<std::uint64_t>(*count) > (info.end - info.begin) / element_size + 1 ||
      static_cast<std::uint64_t>(*count) * element_size != info.end - info.begin) {
    bad(label, where + ": shape " + shape_string(info.shape) + " of " +
                   std::string(dtype_name(info.dtype)) + " does not match its " +
                   std::to_string(info.end - info.begin) + " bytes");
  }
  return info;
}

}  // namespace

std::int64_t TensorInfo::element_count() const { return checked_element_count(shape).value_or(0); }

SafetensorsHeader parse_safetensors_header(std::span<const std::uint8_t> file, const std::string& label) {
  if (file.size() < 8) {
    bad(label, "file is " + std::to_string(file.size()) + " bytes, too small for a safetensors header");
  }
  const std::uint64_t header_size = read_u64_le(file.data());
  if (header_size > file.size() - 8) {
    bad(label, "header length " + std::to_string(header_size) + " exceeds the file size " +
                   std::to_string(file.size()) + " (truncated or not a safetensors file)");
  }
  if (header_size > kMaxSafetensorsHeaderBytes) {
    bad(label, "header length " + std::to_string(header_size) + " is implausibly large");
  }
  const char* text = reinterpret_cast<const char*>(file.data() + 8);
  // Bounded depth: error messages dump parts of the header, and nlohmann's dump recurses.
  const json root = parse_json_bounded(std::string_view(text, header_size), label + ": header");
  if (!root.is_object()) bad(label, "header is not a JSON object");

  SafetensorsHeader header;
  header.data_start = 8 + header_size;
  const std::uint64_t data_size = file.size() - header.data_start;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) bad(label, "__metadata__ is not an object");
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string()) bad(label, "__metadata__." + meta_key + " is not a string");
        header.metadata[meta_key] = meta_value.get<std::string>();
      }
      continue;
    }
    header.tensors.push_back(parse_entry(key, value, data_size, label));
  }

  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& info : header.tensors) {
    if (info.end > info.begin) by_offset.push_back(&info);  // empty tensors occupy no bytes
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      bad(label, "tensors \"" + by_offset[i - 1]->name + "\" and \"" + by_offset[i]->name +
                     "\" overlap in the data section");
    }
  }
  return header;
}

void read_as_float(const TensorView& tensor, std::size_t first, std::span<float> out) {
  const std::size_t count = static_cast<std::size_t>(tensor.element_count());
  if (first > count || out.size() > count - first) {
    throw Error("read_as_float: range past the end of tensor " + tensor.name());
  }
  const std::uint8_t* base = tensor.bytes.data();
  switch (tensor.dtype()) {
    case DType::F32:
      std::memcpy(out.data(), base + first * 4, out.size() * 4);
      return;
    case DType::BF16:
    case DType::F16: {
      const bool is_bf16 = tensor.dtype() == DType::BF16;
      for (std::size_t i = 0; i < out.size(); ++i) {
        std::uint16_t bits;
        std::memcpy(&bits, base + (first + i) * 2, 2);
        out[i] = is_bf16 ? bf16_to_float(bits) : fp16_to_float(bits);
      }
      return;
    }
    default:
      throw Unsupported("tensor " + tensor.name() + " has dtype " +
                        std::string(dtype_name(tensor.dtype())) + "; expected BF16, F16 or F32");
  }
}

std::vector<float> read_as_float(const TensorView& tensor) {
  std::vector<float> out(static_cast<std::size_t>(tensor.element_count()));
  read_as_float(tensor, 0, out);
  return out;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path)
    : file_(path), header_(parse_safetensors_header(file_.bytes(), path.string())) {
  for (std::size_t i = 0; i < header_.tensors.size(); ++i) index_[header_.tensors[i].name] = i;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

TensorView SafetensorsFile::view(const TensorInfo& info) const {
  return TensorView{&info, file_.bytes().subspan(header_.data_start + info.begin, info.end - info.begin)};
}

SafetensorsWriter::SafetensorsWriter(const std::filesystem::path& path, std::vector<Entry> entries,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path), temp_path_(path.string() + ".partial"), entries_(std::move(entries)) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const Entry& entry : entries_) {
    const auto count = checked_element_count(entry.shape);
    if (!count) throw Error("SafetensorsWriter: bad shape for " + entry.name);
    const std::uint64_t size = static_cast<std::uint64_t>(*count) * dtype_size(entry.dtype);
    header[entry.name] = {{"dtype", dtype_name(entry.dtype)},
                          {"shape", entry.shape},
                          {"data_offsets", {offset, offset + size}}};
    sizes_.push_back(size);
    offset += size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned
  out_.open(temp_path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw Error("cannot create " + temp_path_.string());
  std::uint8_t length[8];
  std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<std::uint8_t>(n >> (8 * i));
  out_.write(reinterpret_cast<const char*>(length), 8);
  out_.write(text.data(), static_cast<std::streamsize>(text.size()));
  while (next_ < entries_.size() && sizes_[next_] == 0) ++next_;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (!finished_) {
    out_.close();
    std::error_code ignored;
    std::filesystem::remove(temp_path_, ignored);
  }
}

void SafetensorsWriter::write(std::span<const std::uint8_t> bytes) {
  while (!bytes.empty()) {
    if (next_ >= entries_.size()) throw Error("SafetensorsWriter: more bytes than declared tensors");
    const std::uint64_t room = sizes_[next_] - written_in_current_;
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(room, bytes.size()));
    out_.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(take));
    written_in_current_ += take;
    bytes = bytes.subspan(take);
    if (written_in_current_ == sizes_[next_]) {
      written_in_current_ = 0;
      ++next_;
      while (next_ < entries_.size() && sizes_[next_] == 0) ++next_;
    }
  }
  if (!out_) throw Error("write failed on " + temp_path_.string() + " (disk full?)");
}

void SafetensorsWriter::finish() {
  if (next_ < entries_.size()) {
    throw Error("SafetensorsWriter: tensor " + entries_[next_].name + " was not fully written");
  }
  out_.close();
  if (!out_) throw Error("write failed on " + temp_path_.string() + " (disk full?)");
  std::filesystem::rename(temp_path_, path_);
  finished_ = true;
}

}  // namespace q3vl
