// libFuzzer target: the sequence CSV reader (and a DataLoader over what it accepts) on arbitrary
// text. Any outcome but a dataset or a FormatError is a bug.
#include <cstdint>
#include <string_view>

#include "io/csv_dataset.h"
#include "io/dataloader.h"

using namespace seqgrad;
using namespace seqgrad::io;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CsvOptions opt;
  opt.max_file_bytes = 1 << 20;
  opt.dtype = size % 2 ? DType::f64 : DType::f32;
  opt.require_labels = size % 3 != 0;
  SequenceDataset d;
  try {
    d = SequenceDataset::parse_csv(std::string_view(reinterpret_cast<const char*>(data), size), opt, "fuzz.csv");
  } catch (const FormatError&) {
    return 0;
  }
  if (d.empty() || d.input_size() < 1 || (opt.require_labels && d.label_size() < 1)) __builtin_trap();
  DataLoader loader(d, {.batch_size = 3, .shuffle = true, .seed = size});
  int64_t rows = 0;
  for (const Batch& b : loader.epoch())
    for (int64_t len : b.lengths) rows += len;
  int64_t expect = 0;
  for (size_t i = 0; i < d.size(); ++i) expect += d[i].length();
  if (rows != expect) __builtin_trap();
  return 0;
}
