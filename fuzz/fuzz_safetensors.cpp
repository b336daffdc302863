// libFuzzer target: the safetensors reader on arbitrary bytes. Any outcome but a successful parse
// or a FormatError is a bug (a sanitizer report, another exception type, a crash). A successful
// parse must also survive a write/read round trip unchanged.
#include <cstdint>
#include <cstring>

#include "io/safetensors.h"

using namespace seqgrad;
using namespace seqgrad::io;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ReadOptions opt;
  opt.max_file_bytes = 1 << 20;
  opt.max_header_bytes = 1 << 16;
  opt.check_finite = size % 2 == 1;  // both modes, chosen by the input
  TensorFile file;
  try {
    file = parse_safetensors({data, size}, opt, "fuzz");
  } catch (const FormatError&) {
    return 0;
  }
  // F16/BF16 come back as F32, so compare values, not bytes on disk.
  std::vector<uint8_t> bytes = serialize_safetensors(file.tensors, file.metadata);
  opt.max_file_bytes = bytes.size();
  opt.max_header_bytes = bytes.size();
  TensorFile again = parse_safetensors(bytes, opt, "round trip");
  if (again.tensors.size() != file.tensors.size() || again.metadata != file.metadata) __builtin_trap();
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const Tensor& a = file.tensors[i].second;
    const Tensor& b = again.tensors[i].second;
    if (again.tensors[i].first != file.tensors[i].first || a.shape() != b.shape() || a.dtype() != b.dtype() ||
        std::memcmp(a.raw(), b.raw(), size_t(a.numel()) * dtype_size(a.dtype())) != 0)
      __builtin_trap();
  }
  return 0;
}
