// The example trainer reproduces the tutorial's trace: the default seed within 0.07 of every
// figure, the mean over seeds 1..20 within 0.08, and the no-recurrence ablation stays near chance.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "autograd/tape.h"
#include "examples/trainer.h"
#include "io/checkpoint.h"

using namespace seqgrad;
using namespace seqgrad::examples;

namespace {
constexpr double kLoss[] = {0.65, 0.48, 0.35, 0.28, 0.22};
constexpr double kAcc[] = {0.55, 0.68, 0.78, 0.83, 0.88};

std::vector<EpochMetrics> run(TrainConfig c) {
  auto data = make_task(c.seed);
  Tagger model(c.cell, data.input_size(), c.hidden, data.label_size(), c.seed + 1);
  return train(model, data, c);
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("the default run reproduces the tutorial's trace within 0.07", "[examples]") {
  auto m = run({});
  REQUIRE(m.size() == 5);
  for (int e = 0; e < 5; ++e) {
    INFO("epoch " << e + 1 << ": loss " << m[e].loss << " accuracy " << m[e].accuracy);
    CHECK(std::abs(m[e].loss - kLoss[e]) <= 0.07);
    CHECK(std::abs(m[e].accuracy - kAcc[e]) <= 0.07);
  }
}

TEST_CASE("the mean over seeds 1..20 lies within 0.08 of the tutorial", "[examples]") {
  double loss[5] = {}, acc[5] = {};
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    auto m = run({.seed = seed});
    for (int e = 0; e < 5; ++e) loss[e] += m[e].loss / 20, acc[e] += m[e].accuracy / 20;
  }
  for (int e = 0; e < 5; ++e) {
    INFO("epoch " << e + 1 << ": mean loss " << loss[e] << " mean accuracy " << acc[e]);
    CHECK(std::abs(loss[e] - kLoss[e]) <= 0.08);
    CHECK(std::abs(acc[e] - kAcc[e]) <= 0.08);
  }
}

TEST_CASE("without recurrence the model cannot learn the task", "[examples]") {
  auto m = run({.no_recurrence = true});
  CHECK(m.back().accuracy <= 0.60);
}

TEST_CASE("the same seed gives the same trace", "[examples]") {
  auto a = run({.seed = 7}), b = run({.seed = 7});
  for (int e = 0; e < 5; ++e) {
    CHECK(a[e].loss == b[e].loss);
    CHECK(a[e].accuracy == b[e].accuracy);
  }
}

TEST_CASE("LSTM and GRU cells and plain SGD train too", "[examples]") {
  // The gated cells need more epochs on this task than the Elman RNN.
  CHECK(run({.epochs = 15, .cell = "lstm"}).back().accuracy > 0.8);
  CHECK(run({.epochs = 15, .cell = "gru"}).back().accuracy > 0.8);
  auto sgd = run({.optimizer = "sgd", .lr = 1.0});
  CHECK(sgd.back().loss < sgd.front().loss);
  CHECK_THROWS_WITH(run({.cell = "transformer"}), Catch::Contains("unknown cell"));
}

TEST_CASE("metrics CSV, SVG plot and saved parameters are written and read back", "[examples]") {
  auto m = run({});
  write_metrics_csv(m, "test_metrics.csv");
  std::string csv = slurp("test_metrics.csv");
  CHECK(csv.rfind("epoch,loss,accuracy,seconds\n", 0) == 0);
  int lines = 0;
  for (char ch : csv) lines += ch == '\n';
  CHECK(lines == 6);
  double loss1 = 0;
  CHECK(std::sscanf(csv.c_str() + csv.find('\n') + 1, "1,%lf,", &loss1) == 1);
  CHECK(loss1 == Approx(m[0].loss).epsilon(1e-5));

  write_svg_plot(m, "test_plot.svg");
  std::string svg = slurp("test_plot.svg");
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(svg.find("<polyline") != std::string::npos);

  // --save then --init: a trained model saved and loaded into a fresh one predicts the same.
  auto data = make_task(144);
  Tagger a("rnn", 5, 8, 1, 145), b("rnn", 5, 8, 1, 999);
  train(a, data, {});
  io::save(a, "test_model.safetensors");
  io::load(b, "test_model.safetensors");
  auto names = a.named_parameters();
  CHECK(names.front().first == "rnn.weight_ih_l0");
  CHECK(names.back().first == "head.bias");
  NoGradGuard no_grad;
  Tensor x = data[0].x.reshape({1, 10, 5});
  CHECK(a.forward(x).to_vector() == b.forward(x).to_vector());
  for (const char* f : {"test_metrics.csv", "test_plot.svg", "test_model.safetensors"}) std::remove(f);
}

TEST_CASE("training stops with a message when the loss becomes non-finite", "[examples][debug]") {
  TrainConfig c{.epochs = 2, .optimizer = "sgd", .lr = 1e38};  // the first update overflows
  CHECK_THROWS_WITH(run(c), "the loss is inf at epoch 1, batch 2: training stopped (--detect-anomaly names the op that "
                            "produced it)");
  Tape::current().clear();
  c.detect_anomaly = true;  // stops at the op instead
  CHECK_THROWS_WITH(run(c), Catch::StartsWith("detect_anomaly: forward of \"loss: sum\" produced a non-finite value"));
  Tape::current().clear();
}
