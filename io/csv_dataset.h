// A dataset of variable-length sequences, and the CSV format it loads.
//
// The CSV format (one row per time step):
//
//   sequence_id,step,temp,pressure,y      <- header row, required
//   a,0,0.5,1.25,0                        <- sequence "a": steps 0, 1, 2
//   a,1,0.25,1.5,1
//   a,2,-0.5,1.0,1
//   b,0,1.0,0.0,0                         <- sequence "b": a different length is fine
//   b,1,0.75,0.5,1
//
// - The first two columns are sequence_id (any non-empty text) and step (an integer). Every other
//   column is a feature, except the label columns: those named `y` or `y<k>` (y0, y1, ...). Labels
//   conventionally come last, but a column's name decides its role, not its position. Features and
//   labels keep their header order. At least one feature column and (unless require_labels is off)
//   at least one label column.
// - The rows of one sequence are consecutive, with steps 0, 1, 2, ... in order.
// - Values are decimal numbers (as strtod reads them, optional leading '+'); NaN and infinities
//   are rejected, as are values that overflow the dataset's dtype.
// - Fields are separated by commas and may be padded with spaces; quoting is not supported.
//   Line ends may be \n or \r\n; a UTF-8 byte-order mark and empty lines at the end are ignored.
//
// Anything else is rejected with a FormatError "file:line: reason": an empty file, a missing or
// incomplete header, duplicate column names, a row with more or fewer fields than the header,
// an empty, non-numeric or non-finite value, a step that skips or repeats a number, a sequence
// that does not start at step 0 or whose rows are not consecutive.
//
//   auto data = SequenceDataset::from_csv("train.csv");
//   LSTM lstm({.input_size = data.input_size(), .hidden_size = 32});
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/tensor.h"
#include "io/file.h"

namespace seqgrad::io {

struct Sequence {
  std::string id;
  Tensor x;  // (T, input_size)
  Tensor y;  // (T, label_size); (T, 0) when the dataset has no labels
  int64_t length() const { return x.size(0); }
};

struct CsvOptions {
  DType dtype = DType::f32;
  bool require_labels = true;
  uint64_t max_file_bytes = uint64_t(4) << 30;  // 4 GiB
};

class SequenceDataset {
 public:
  SequenceDataset() = default;
  SequenceDataset(std::vector<std::string> feature_names, std::vector<std::string> label_names,
                  DType dtype = DType::f32);

  // Loads the CSV format above.
  static SequenceDataset from_csv(const std::filesystem::path& path, const CsvOptions& options = {});
  // The same from text in memory; `name` stands for the file in messages.
  static SequenceDataset parse_csv(std::string_view text, const CsvOptions& options = {},
                                   const std::string& name = "<memory>");

  // Appends a sequence; throws std::invalid_argument if its widths or dtype disagree with the dataset's.
  void add(Sequence s);

  size_t size() const { return sequences_.size(); }
  bool empty() const { return sequences_.empty(); }
  const Sequence& operator[](size_t i) const { return sequences_.at(i); }
  int64_t input_size() const { return int64_t(features_.size()); }
  int64_t label_size() const { return int64_t(labels_.size()); }
  int64_t max_length() const;
  DType dtype() const { return dtype_; }
  const std::vector<std::string>& feature_names() const { return features_; }
  const std::vector<std::string>& label_names() const { return labels_; }

 private:
  std::vector<std::string> features_, labels_;
  std::vector<Sequence> sequences_;
  DType dtype_ = DType::f32;
};

// True for the names the CSV format treats as labels: "y" and "y<digits>".
bool is_label_column(std::string_view name);

}  // namespace seqgrad::io
