// The sequence CSV format (every rejection with file:line) and the DataLoader (padding, lengths,
// seeded shuffling, drop_last).
#include <catch2/catch.hpp>

#include <fstream>
#include <set>

#include "autograd/seqgrad.h"
#include "io/csv_dataset.h"
#include "io/dataloader.h"
#include "layers/lstm.h"
#include "test_io_util.h"

using namespace seqgrad;
using namespace seqgrad::io;
using Catch::Contains;

namespace {

const char* kCsv =
    "sequence_id,step,temp,pressure,y\n"
    "a,0,0.5,1.25,0\n"
    "a,1,0.25,1.5,1\n"
    "a,2,-0.5,1.0,1\n"
    "b,0,1.0,0.0,0\n"
    "b,1,0.75,0.5,1\n";

void expect_rejected(const std::string& text, const std::string& where, std::initializer_list<const char*> parts,
                     const CsvOptions& opt = {}) {
  try {
    SequenceDataset::parse_csv(text, opt, "d.csv");
    FAIL("accepted a malformed CSV");
  } catch (const FormatError& e) {
    std::string msg = e.what();
    INFO(msg);
    CHECK_THAT(msg, Catch::StartsWith(where));
    for (const char* p : parts) CHECK_THAT(msg, Contains(p));
  }
}

}  // namespace

TEST_CASE("CSV sequences: header roles, variable lengths, values", "[io]") {
  auto d = SequenceDataset::parse_csv(kCsv);
  CHECK(d.size() == 2);
  CHECK(d.input_size() == 2);
  CHECK(d.label_size() == 1);
  CHECK(d.feature_names() == std::vector<std::string>{"temp", "pressure"});
  CHECK(d.label_names() == std::vector<std::string>{"y"});
  CHECK(d[0].id == "a");
  CHECK(d[0].length() == 3);
  CHECK(d[1].length() == 2);
  CHECK(d.max_length() == 3);
  CHECK(d[0].x.shape() == Shape{3, 2});
  CHECK(d[0].x.to_vector() == std::vector<double>{0.5, 1.25, 0.25, 1.5, -0.5, 1.0});
  CHECK(d[0].y.to_vector() == std::vector<double>{0, 1, 1});
  CHECK(d[1].y.shape() == Shape{2, 1});

  SECTION("labels are named y or y<k>, anywhere after step; CRLF, spaces, BOM, '+', trailing blank lines") {
    auto e = SequenceDataset::parse_csv(
        "\xEF\xBB\xBFsequence_id, step, y1, f, y0, yes\r\n"
        "s1, 0, 1, +2.5, 3, 1e-3\r\n"
        "s1, 1, 4, 5, 6, -7\r\n\r\n\n",
        {.dtype = DType::f64});
    CHECK(e.feature_names() == std::vector<std::string>{"f", "yes"});
    CHECK(e.label_names() == std::vector<std::string>{"y1", "y0"});
    CHECK(e.dtype() == DType::f64);
    CHECK(e[0].x.to_vector() == std::vector<double>{2.5, 1e-3, 5, -7});
    CHECK(e[0].y.to_vector() == std::vector<double>{1, 3, 4, 6});
  }
  SECTION("labels may be optional") {
    auto e = SequenceDataset::parse_csv("sequence_id,step,f\n7,0,1\n", {.require_labels = false});
    CHECK(e.label_size() == 0);
    CHECK(e[0].y.shape() == Shape{1, 0});
  }
  SECTION("from a file; the trainer's input size comes from the header") {
    TempDir dir;
    std::ofstream(dir / "train.csv") << kCsv;
    auto f = SequenceDataset::from_csv(dir / "train.csv");
    LSTM lstm({.input_size = f.input_size(), .hidden_size = 4});
    CHECK(lstm.forward(f[0].x.reshape({1, 3, 2})).output.shape() == Shape{1, 3, 4});
    CHECK_THROWS_WITH(SequenceDataset::from_csv(dir / "train.csv", {.max_file_bytes = 10}),
                      Contains("train.csv") && Contains("over the limit"));
    CHECK_THROWS_WITH(SequenceDataset::from_csv(dir / "none.csv"), Contains("none.csv"));
    std::ofstream(dir / "bad.csv") << "sequence_id,step,f,y\na,0,1,2\na,2,1,2\n";
    CHECK_THROWS_WITH(SequenceDataset::from_csv(dir / "bad.csv"), Catch::StartsWith((dir / "bad.csv").string() + ":3: "));
  }
}

TEST_CASE("malformed CSVs are rejected with file:line and the reason", "[io]") {
  expect_rejected("", "d.csv:1: ", {"empty file"});
  expect_rejected("\n\n  \n", "d.csv:1: ", {"empty file"});
  expect_rejected("sequence_id,step,f,y\n", "d.csv:1: ", {"no data rows"});
  expect_rejected("id,step,f,y\na,0,1,2\n", "d.csv:1: ", {"missing header", "sequence_id,step"});
  expect_rejected("a,0,1,2\na,1,1,2\n", "d.csv:1: ", {"missing header"});
  expect_rejected("sequence_id\n", "d.csv:1: ", {"missing header"});
  expect_rejected("sequence_id,step,y\na,0,1\n", "d.csv:1: ", {"no feature columns"});
  expect_rejected("sequence_id,step,f\na,0,1\n", "d.csv:1: ", {"no label column"});
  expect_rejected("sequence_id,step,f,,y\n", "d.csv:1: ", {"column 4 has no name"});
  expect_rejected("sequence_id,step,f,f,y\n", "d.csv:1: ", {"'f' more than once"});
  expect_rejected("sequence_id,step,\"f\",y\n", "d.csv:1: ", {"quoted"});
  const std::string h = "sequence_id,step,f,y\n";
  expect_rejected(h + "a,0,1,2\na,1,1\n", "d.csv:3: ", {"3 fields, but the header has 4"});
  expect_rejected(h + "a,0,1,2,3\n", "d.csv:2: ", {"5 fields"});
  expect_rejected(h + "a,0,1,2\n\na,1,1,2\n", "d.csv:3: ", {"1 fields"});
  expect_rejected(h + "a,0,abc,2\n", "d.csv:2: ", {"column 3 ('f')", "'abc' is not a number"});
  expect_rejected(h + "a,0,1.5x,2\n", "d.csv:2: ", {"not a number"});
  expect_rejected(h + "a,0,,2\n", "d.csv:2: ", {"column 3 ('f') is empty"});
  expect_rejected(h + "a,0,1,nan\n", "d.csv:2: ", {"column 4 ('y')", "not finite"});
  expect_rejected(h + "a,0,inf,1\n", "d.csv:2: ", {"not finite"});
  expect_rejected(h + "a,0,1e39,1\n", "d.csv:2: ", {"not finite in float32"});
  CHECK(SequenceDataset::parse_csv(h + "a,0,1e39,1\n", {.dtype = DType::f64})[0].x.item() == 1e39);
  expect_rejected(h + "a,0,1e999,1\n", "d.csv:2: ", {"out of range"});
  expect_rejected(h + "a,x,1,2\n", "d.csv:2: ", {"step 'x' is not an integer"});
  expect_rejected(h + "a,0.5,1,2\n", "d.csv:2: ", {"not an integer"});
  expect_rejected(h + ",0,1,2\n", "d.csv:2: ", {"sequence_id is empty"});
  expect_rejected(h + "a,1,1,2\n", "d.csv:2: ", {"starts at step 1", "must be step 0"});
  expect_rejected(h + "a,0,1,2\na,2,1,2\n", "d.csv:3: ", {"step 2 follows step 0", "no gaps"});
  expect_rejected(h + "a,0,1,2\na,1,1,2\na,1,1,2\n", "d.csv:4: ", {"step 1 of sequence 'a' repeats"});
  expect_rejected(h + "a,0,1,2\na,0,1,2\n", "d.csv:3: ", {"step 0 of sequence 'a' repeats"});
  expect_rejected(h + "a,0,1,2\nb,0,1,2\na,0,1,2\n", "d.csv:4: ", {"sequence 'a' starts again", "consecutive"});
  expect_rejected(h + "a,0,1,2\nb,0,1,2\na,1,1,2\n", "d.csv:4: ", {"sequence 'a' starts again"});
  expect_rejected(std::string(kCsv), "d.csv: ", {"over the limit"}, {.max_file_bytes = 8});
}

TEST_CASE("DataLoader pads to the batch's longest sequence and reports lengths", "[io]") {
  SequenceDataset d({"f0", "f1"}, {"y"});
  for (int64_t len : {3, 1, 4, 2, 5}) {
    std::vector<double> x, y;
    for (int64_t t = 0; t < len; ++t) {
      x.insert(x.end(), {double(10 * len + t), -double(t)});
      y.push_back(double(len));
    }
    d.add({std::to_string(len), from_vector(x, {len, 2}), from_vector(y, {len, 1})});
  }
  CHECK_THROWS_WITH(d.add({"bad", zeros({2, 3}), zeros({2, 1})}), Contains("x must be"));

  DataLoader loader(d, {.batch_size = 2, .shuffle = false, .pad_value = -9});
  CHECK(loader.size() == 3);
  std::vector<Batch> batches;
  for (const Batch& b : loader.epoch()) batches.push_back(b);
  REQUIRE(batches.size() == 3);
  CHECK(batches[0].lengths == std::vector<int64_t>{3, 1});
  CHECK(batches[0].indices == std::vector<size_t>{0, 1});
  CHECK(batches[0].x.shape() == Shape{2, 3, 2});
  CHECK(batches[0].x.to_vector() == std::vector<double>{30, 0, 31, -1, 32, -2, 10, 0, -9, -9, -9, -9});
  CHECK(batches[0].y.to_vector() == std::vector<double>{3, 3, 3, 1, -9, -9});
  CHECK(batches[2].size() == 1);  // the remainder
  CHECK(batches[2].x.shape() == Shape{1, 5, 2});

  SECTION("time-major layout") {
    DataLoader tm(d, {.batch_size = 2, .shuffle = false, .batch_first = false});
    tm.start_epoch();
    Batch b = tm.batch(0);
    CHECK(b.x.shape() == Shape{3, 2, 2});
    CHECK(b.x.to_vector() == std::vector<double>{30, 0, 10, 0, 31, -1, 0, 0, 32, -2, 0, 0});
    CHECK_THROWS_AS(tm.batch(3), std::out_of_range);
  }
  SECTION("drop_last") {
    DataLoader dl(d, {.batch_size = 2, .drop_last = true});
    CHECK(dl.size() == 2);
    size_t n = 0;
    for (const Batch& b : dl.epoch()) n += b.indices.size();
    CHECK(n == 4);
    CHECK(DataLoader(d, {.batch_size = 7, .drop_last = true}).size() == 0);
    CHECK_THROWS_WITH(DataLoader(d, {.batch_size = 0}), Contains("batch_size must be >= 1"));
  }
  SECTION("the batches feed a recurrent layer with lengths") {
    LSTM lstm({.input_size = 2, .hidden_size = 3});
    auto out = lstm.forward(batches[0].x, {}, batches[0].lengths);
    CHECK(out.output.shape() == Shape{2, 3, 3});
  }
}

TEST_CASE("DataLoader shuffles per epoch from its seed, reproducibly", "[io]") {
  SequenceDataset d({"f"}, {"y"});
  for (int i = 0; i < 20; ++i) d.add({std::to_string(i), full({1 + i % 3, 1}, i), zeros({1 + i % 3, 1})});
  auto orders = [&](uint64_t seed, int epochs) {
    DataLoader l(d, {.batch_size = 6, .seed = seed});
    std::vector<std::vector<size_t>> out;
    for (int e = 0; e < epochs; ++e) {
      std::vector<size_t> order;
      for (const Batch& b : l.epoch()) order.insert(order.end(), b.indices.begin(), b.indices.end());
      out.push_back(order);
    }
    return out;
  };
  auto a = orders(11, 3), b = orders(11, 3), c = orders(12, 3);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a[0] != a[1]);  // a new order every epoch
  for (auto& o : a) CHECK(std::set<size_t>(o.begin(), o.end()).size() == 20);  // a permutation

  // Restoring the generator's state restores the next epoch's order.
  DataLoader l(d, {.batch_size = 6, .seed = 11});
  l.start_epoch();
  auto saved = l.generator().state();
  l.start_epoch();
  auto second = l.order();
  DataLoader fresh(d, {.batch_size = 6, .seed = 999});
  fresh.generator().set_state(saved);
  fresh.start_epoch();
  CHECK(fresh.order() == second);
  CHECK(second == a[1]);
}
