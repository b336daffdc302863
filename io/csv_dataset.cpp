#include "io/csv_dataset.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

namespace seqgrad::io {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Quotes a field for a message, shortened: a fuzzer's 10 kB field should not make a 10 kB message.
std::string show(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += (c >= 32 && c < 127) ? c : '?';
  return "'" + out + (s.size() > 40 ? "...'" : "'");
}

void split(std::string_view line, std::vector<std::string_view>& fields) {
  fields.clear();
  size_t start = 0;
  for (;;) {
    size_t comma = line.find(',', start);
    fields.push_back(trim(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
}

// The parser's state: the file's name, the current line, and the sequence being assembled.
class CsvParser {
 public:
  CsvParser(const CsvOptions& opt, const std::string& name) : opt_(opt), name_(name) {}

  SequenceDataset parse(std::string_view text) {
    if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 BOM
    // Empty lines at the end (and the final newline) are not rows.
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '\t'))
      text.remove_suffix(1);
    if (text.empty())
      throw FormatError(fmt::format("{}:1: empty file; expected a header row sequence_id,step,<features...>,y", name_));

    size_t pos = 0;
    bool header_done = false;
    while (pos <= text.size()) {
      size_t nl = text.find('\n', pos);
      std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      ++line_;
      split(line, fields_);
      if (!header_done) {
        header(line);
        header_done = true;
      } else {
        row();
      }
      if (nl == std::string_view::npos) break;
      pos = nl + 1;
    }
    finish_sequence();
    if (data_.empty())
      throw FormatError(fmt::format("{}:{}: no data rows after the header", name_, line_));
    return std::move(data_);
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const { throw FormatError(fmt::format("{}:{}: {}", name_, line_, msg)); }

  void header(std::string_view line) {
    if (fields_.size() < 2 || fields_[0] != "sequence_id" || fields_[1] != "step")
      fail(fmt::format("missing header: the first row must start with sequence_id,step (got {})", show(line)));
    std::unordered_set<std::string_view> seen;
    std::vector<std::string> features, labels;
    for (size_t i = 0; i < fields_.size(); ++i) {
      std::string_view f = fields_[i];
      if (f.empty()) fail(fmt::format("header column {} has no name", i + 1));
      if (f.front() == '"') fail(fmt::format("header column {} is quoted ({}); quoting is not supported", i + 1, show(f)));
      if (!seen.insert(f).second) fail(fmt::format("header names column {} more than once", show(f)));
      names_.push_back(show(f));
      if (i < 2) continue;
      if (is_label_column(f)) {
        labels.emplace_back(f);
        columns_.push_back(-int(labels.size()));  // label k -> -(k+1)
      } else {
        features.emplace_back(f);
        columns_.push_back(int(features.size()) - 1);
      }
    }
    if (features.empty()) fail("header has no feature columns (every column after step is named y or y<k>)");
    if (labels.empty() && opt_.require_labels)
      fail("header has no label column; name the label column(s) y or y0, y1, ...");
    data_ = SequenceDataset(std::move(features), std::move(labels), opt_.dtype);
    n_fields_ = fields_.size();
  }

  double number(size_t col) {
    std::string_view f = fields_[col];
    if (f.empty()) fail(fmt::format("column {} ({}) is empty", col + 1, names_[col]));
    std::string_view digits = f.front() == '+' ? f.substr(1) : f;
    double v = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec == std::errc::result_out_of_range) fail(fmt::format("column {} ({}): value {} is out of range", col + 1, names_[col], show(f)));
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty())
      fail(fmt::format("column {} ({}): {} is not a number", col + 1, names_[col], show(f)));
    // Finite in the dataset's dtype: 1e39 is a double but not a float.
    if (!std::isfinite(v) || (opt_.dtype == DType::f32 && !std::isfinite(float(v))))
      fail(fmt::format("column {} ({}): value {} is not finite{}", col + 1, names_[col], show(f),
                       std::isfinite(v) ? " in float32" : ""));
    return v;
  }

  void row() {
    if (fields_.size() != n_fields_)
      fail(fmt::format("{} fields, but the header has {}", fields_.size(), n_fields_));
    std::string_view id = fields_[0];
    if (id.empty()) fail("sequence_id is empty");
    int64_t step = 0;
    std::string_view s = fields_[1];
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), step);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size())
      fail(fmt::format("step {} is not an integer", show(s)));

    if (id != current_id_ || !in_sequence_) {
      finish_sequence();
      auto [it, fresh] = ended_at_.emplace(std::string(id), line_);
      if (!fresh)
        fail(fmt::format("sequence {} starts again; its rows must be consecutive (an earlier run of it ended before "
                         "line {})", show(id), it->second));
      if (step != 0) fail(fmt::format("sequence {} starts at step {}; its first row must be step 0", show(id), step));
      current_id_ = id;
      in_sequence_ = true;
    } else if (step != steps_) {
      if (step == steps_ - 1) fail(fmt::format("step {} of sequence {} repeats", step, show(id)));
      fail(fmt::format("step {} follows step {} in sequence {}; steps must be 0, 1, 2, ... with no gaps", step,
                       steps_ - 1, show(id)));
    }
    ++steps_;
    for (size_t c = 2; c < fields_.size(); ++c) {
      double v = number(c);
      int k = columns_[c - 2];
      if (k >= 0)
        xs_.push_back(v);
      else
        ys_.push_back(v);
    }
  }

  // Closes the sequence being read (if any) and appends it to the dataset.
  void finish_sequence() {
    if (!in_sequence_) return;
    Sequence s;
    s.id = std::string(current_id_);
    const int64_t t = steps_, f = data_.input_size(), l = data_.label_size();
    s.x = from_vector(std::span<const double>(xs_), {t, f}, opt_.dtype);
    s.y = from_vector(std::span<const double>(ys_), {t, l}, opt_.dtype);
    data_.add(std::move(s));
    ended_at_[std::string(current_id_)] = line_;
    xs_.clear();
    ys_.clear();
    steps_ = 0;
    in_sequence_ = false;
  }

  const CsvOptions& opt_;
  const std::string& name_;
  SequenceDataset data_;
  std::vector<std::string_view> fields_;
  std::vector<std::string> names_;  // the header's column names
  std::vector<int> columns_;  // per column after step: feature index, or -(label index + 1)
  size_t n_fields_ = 0;
  int64_t line_ = 0;
  std::unordered_map<std::string, int64_t> ended_at_;  // sequence id -> line its rows ended before
  std::string_view current_id_;
  bool in_sequence_ = false;
  int64_t steps_ = 0;  // rows read of the current sequence
  std::vector<double> xs_, ys_;
};

}  // namespace

bool is_label_column(std::string_view name) {
  if (name.empty() || name[0] != 'y') return false;
  return std::all_of(name.begin() + 1, name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

SequenceDataset::SequenceDataset(std::vector<std::string> feature_names, std::vector<std::string> label_names,
                                 DType dtype)
    : features_(std::move(feature_names)), labels_(std::move(label_names)), dtype_(dtype) {}

void SequenceDataset::add(Sequence s) {
  if (!s.x.defined() || s.x.rank() != 2 || s.x.size(1) != input_size() || s.x.dtype() != dtype_)
    throw std::invalid_argument(fmt::format("SequenceDataset::add: x must be ({{T}}, {}) {}, got {}", input_size(),
                                            dtype_, s.x.defined() ? fmt::format("{} {}", s.x.shape(), s.x.dtype()) : "undefined"));
  if (!s.y.defined()) s.y = zeros({s.x.size(0), 0}, dtype_);
  if (s.y.rank() != 2 || s.y.size(0) != s.x.size(0) || s.y.size(1) != label_size() || s.y.dtype() != dtype_)
    throw std::invalid_argument(fmt::format("SequenceDataset::add: y must be ({}, {}) {}, got {} {}", s.x.size(0),
                                            label_size(), dtype_, s.y.shape(), s.y.dtype()));
  sequences_.push_back(std::move(s));
}

int64_t SequenceDataset::max_length() const {
  int64_t m = 0;
  for (auto& s : sequences_) m = std::max(m, s.length());
  return m;
}

SequenceDataset SequenceDataset::parse_csv(std::string_view text, const CsvOptions& options, const std::string& name) {
  if (text.size() > options.max_file_bytes)
    throw FormatError(fmt::format("{}: {} bytes, over the limit of {} (CsvOptions::max_file_bytes)", name, text.size(),
                                  options.max_file_bytes));
  return CsvParser(options, name).parse(text);
}

SequenceDataset SequenceDataset::from_csv(const std::filesystem::path& path, const CsvOptions& options) {
  FileSource src(path);
  if (src.size() > options.max_file_bytes)
    throw FormatError(fmt::format("{}: {} bytes, over the limit of {} (CsvOptions::max_file_bytes)", src.name(),
                                  src.size(), options.max_file_bytes));
  std::string text(size_t(src.size()), '\0');
  src.read(0, text.data(), text.size());
  return CsvParser(options, src.name()).parse(text);
}

}  // namespace seqgrad::io
