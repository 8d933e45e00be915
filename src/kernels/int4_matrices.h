#pragma once
// What q3vl's int4 CPU kernels share: block-quantized weight matrices as they lie in a package
// (QMoE's and MatMulNBits' symmetric 4-bit layout), the instruction set a call uses, and how a
// call runs its tasks in parallel.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace q3vl::kernels {

// A stack of `experts` matrices [rows, cols] in QMoE's symmetric int4 layout: row r of expert e
// is cols/2 bytes at packed + (e*rows + r)*cols/2, value c in byte c/2 (low nibble first), standing
// for (nibble - 8) * scale; scales [experts, rows, ceil(cols/block)]. MatMulNBits' 4-bit B
// [N, K/block, block/2] without zero points is one such matrix (rows N, cols K) when K is a
// multiple of the block.
// The scales are float32 (`scales`) or, in q3vl's kernel graphs, IEEE half floats (`half_scales`,
// a tenth fewer bytes to read per weight at block 32); exactly one of the two is set.
struct Int4Matrices {
  const std::uint8_t* packed = nullptr;
  const float* scales = nullptr;
  std::int64_t experts = 0, rows = 0, cols = 0, block = 0;
  const std::uint16_t* half_scales = nullptr;
};

// Block sizes the kernels read: powers of two (the vector loops find a group's block by a shift),
// as QMoE's and MatMulNBits' are. The exporter asks this before handing a node to the kernels.
inline bool int4_block_supported(std::int64_t block) { return block >= 2 && (block & (block - 1)) == 0; }

// The instruction set a kernel call uses; Best picks the widest this CPU has.
// AvxVnni: AVX2 with AVX-VNNI's 256-bit dpbusd (Intel's client cores from Alder Lake, which lack
// AVX-512).
enum class Int4Isa { Best, Portable, Avx2, AvxVnni, Avx512Vnni };
bool int4_isa_available(Int4Isa isa);
std::string to_string(Int4Isa isa);
// Every instruction set from the narrowest (Portable) to the widest, Best not included.
inline constexpr Int4Isa kEveryInt4Isa[] = {Int4Isa::Portable, Int4Isa::Avx2, Int4Isa::AvxVnni, Int4Isa::Avx512Vnni};
// Whether q3vl's int8 panels beat ONNX Runtime's MatMulNBits on this CPU: on any x86 CPU with AVX2
// (int4_matmul_bench: 1.4x MLAS's AVX-512 VNNI path on Zen 4, 1.17x its AVX2 path on Zen 3; the
// AVX-VNNI panels, 2.3x the AVX2 ones on Zen 4, were not set against MLAS's AVX-VNNI path). Other
// CPUs (portable C++ only) keep MatMulNBits for int8 vision.
bool int8_kernels_fast();
// `isa`, or for Best the widest this CPU has; throws Unsupported if the CPU lacks it.
Int4Isa usable_isa(Int4Isa isa);

// Runs `count` independent tasks, possibly at once (ONNX Runtime's thread pool in a session).
using ParallelFor = std::function<void(std::size_t count, const std::function<void(std::size_t)>& task)>;
ParallelFor serial_for();

}  // namespace q3vl::kernels
