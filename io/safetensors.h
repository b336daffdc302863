// safetensors files: named tensors plus string metadata, the format PyTorch and Hugging Face use.
//
//   bytes [0, 8)        N, the header length: unsigned 64-bit little-endian
//   bytes [8, 8 + N)    the header: a UTF-8 JSON object (writers pad it with spaces to a multiple of 8)
//                         {"__metadata__": {"epoch": "3"},                      optional, string -> string
//                          "weight_ih_l0": {"dtype": "F32", "shape": [32, 5],
//                                           "data_offsets": [0, 640]}, ...}
//   bytes [8 + N, end)  the data section; a tensor's data_offsets [begin, end) are relative to its
//                       start. Values are row-major, little-endian.
//
// Reading accepts F32 and F64 (kept as float32 / float64) and F16, BF16 and I8 (converted to
// float32; TensorFile::int8 names the I8 ones: a quantized model's weights, quant/quantize.h).
// Writing stores float32 as F32 and float64 as F64 (and float32 tensors named in `int8`, which
// must hold integers in [-128, 127], as I8), tensors in the order given, header padded so
// the data section starts at a multiple of 8.
//
// The reader treats its input as hostile. It rejects, with a FormatError naming the file and the
// byte offset or tensor name: truncated files, a header length past the end of the file or over
// max_header_bytes, files over max_file_bytes, malformed JSON (with its byte offset), a header
// that is not an object, a duplicate name, an unknown or unsupported dtype, a shape with negative,
// fractional or too many extents, data_offsets that are not [begin <= end], lie outside the data
// section, disagree with dtype x shape, or overlap another tensor's, a __metadata__ that is not
// string -> string, and (with check_finite) NaN or infinite values. No tensor is allocated before
// its byte range has been checked against the file's size, so memory use is bounded by the file.
//
// Not here: writing F16/BF16, integer dtypes other than I8, memory mapping.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "autograd/tensor.h"
#include "io/file.h"

namespace seqgrad::io {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::map<std::string, std::string>;
using Int8Names = std::set<std::string>;

struct ReadOptions {
  uint64_t max_file_bytes = uint64_t(64) << 30;   // 64 GiB
  uint64_t max_header_bytes = uint64_t(100) << 20;  // 100 MiB, as in the reference implementation
  bool check_finite = false;                        // reject NaN and +-inf values
};

struct TensorFile {
  NamedTensors tensors;  // in data-section order (by begin offset)
  Metadata metadata;
  Int8Names int8;        // the tensors stored as I8

  // The tensor called `name`, or nullptr.
  const Tensor* find(std::string_view name) const;
  // The tensor called `name`; throws std::out_of_range listing the names present.
  const Tensor& at(std::string_view name) const;
};

// Reads a safetensors file, checking it as described above.
TensorFile load_safetensors(const std::filesystem::path& path, const ReadOptions& options = {});
// The same over bytes in memory (the fuzz target's entry point); `name` appears in messages.
TensorFile parse_safetensors(std::span<const uint8_t> bytes, const ReadOptions& options = {},
                             const std::string& name = "<memory>");
TensorFile read_safetensors(const ByteSource& source, const ReadOptions& options = {});

// Writes tensors (float32 or float64, unique names other than "__metadata__") and
// metadata crash-safely (AtomicFile). Throws std::invalid_argument for bad names or undefined
// tensors before anything is written.
void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors, const Metadata& metadata = {},
                      const Int8Names& int8 = {});
// The file's bytes, in memory.
std::vector<uint8_t> serialize_safetensors(const NamedTensors& tensors, const Metadata& metadata = {},
                                           const Int8Names& int8 = {});

// IEEE half and bfloat16 bit patterns to float (exact; NaN stays NaN).
float half_to_float(uint16_t h);
float bfloat16_to_float(uint16_t b);

}  // namespace seqgrad::io
