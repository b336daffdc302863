// Anomaly detection and the profiler (autograd/debug.h): NaNs planted at a known step of an LSTM
// are reported with op, module path, step and shapes; the Chrome trace parses and is consistent.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>

#include <nlohmann/json.hpp>

#include "autograd/seqgrad.h"
#include "layers/layers.h"
#include "test_io_util.h"

using namespace seqgrad;
using Catch::Contains;

namespace {

constexpr int64_t B = 4, I = 3, H = 8, T = 40;

// An LSTM cell written with ordinary ops, whose hidden state is multiplied at every step by a
// learnable per-step gain: h = o * tanh(c) / gain_t, or o * tanh(c) * log(gain_t). A gain of 0 at
// step 37 fails in forward (a division by zero); with log, the smallest float fails only in
// backward (log is finite there, its derivative 1/x is not).
struct CustomCell : Module {
  std::shared_ptr<Linear> gates =
      register_module("gates", std::make_shared<Linear>(LinearOptions{.in_features = I + H, .out_features = 4 * H}));
};
struct Encoder : Module {
  std::shared_ptr<CustomCell> cell = register_module("cell", std::make_shared<CustomCell>());
  std::shared_ptr<LSTM> lstm =
      register_module("lstm", std::make_shared<LSTM>(LSTMOptions{.input_size = I, .hidden_size = H, .num_layers = 2}));

  // x: (B, T, I), gain: (T, B, 1) -> the sum of every step's h.
  Tensor custom(const Tensor& x, const Tensor& gain, bool use_log) {
    Scope scope(cell->path());
    Tensor h = zeros({B, H}), c = zeros({B, H}), total = zeros({});
    for (int64_t t = 0; t < T; ++t) {
      Scope step("step", t, true);
      Tensor z = cell->gates->forward(concat(std::vector{select(x, 1, t), h}, 1));
      Tensor i = sigmoid(slice(z, 1, 0, H)), f = sigmoid(slice(z, 1, H, 2 * H));
      Tensor g = tanh(slice(z, 1, 2 * H, 3 * H)), o = sigmoid(slice(z, 1, 3 * H, 4 * H));
      c = f * c + i * g;
      Tensor scale = select(gain, 0, t);
      h = use_log ? o * tanh(c) * log(scale) : o * tanh(c) / scale;
      total = total + sum(h);
    }
    return total;
  }
};
struct Model : Module {
  std::shared_ptr<Encoder> encoder = register_module("encoder", std::make_shared<Encoder>());
};

Tensor gains(double normal, int64_t at, double planted) {
  Tensor g = full({T, B, 1}, normal);
  for (int64_t b = 0; b < B; ++b) g.span<float>()[size_t(at * B + b)] = float(planted);
  return g.requires_grad_();
}
Tensor zero_gain_at(int64_t t) { return gains(1.0, t, 0.0); }
Tensor tiny_gain_at(int64_t t) { return gains(std::exp(1.0), t, std::numeric_limits<float>::denorm_min()); }

Tensor inputs() {
  Generator gen(3);
  return uniform({B, T, I}, -1, 1, gen);
}

std::string anomaly_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const AnomalyError& e) {
    return e.what();
  }
  return "no AnomalyError";
}

}  // namespace

TEST_CASE("module paths name nested submodules", "[debug]") {
  Model m;
  CHECK(m.encoder->path() == "encoder");
  CHECK(m.encoder->lstm->path() == "encoder.lstm");
  CHECK(m.encoder->cell->gates->path() == "encoder.cell.gates");
  CHECK(m.path().empty());
}

TEST_CASE("scopes: a submodule's path replaces its parent's; nothing is kept while off", "[debug]") {
  {
    Scope a("encoder.cell"), s("step", 37, true), b("encoder.cell.gates");
    CHECK(current_scope().empty());  // off: not even pushed
  }
  DetectAnomaly on;
  Scope a("encoder.cell"), s("step", 37, true);
  CHECK(current_scope() == "encoder.cell step 37");
  {
    Scope b("encoder.cell.gates");
    CHECK(current_scope() == "encoder.cell.gates step 37");
  }
  CHECK(current_scope() == "encoder.cell step 37");
}

TEST_CASE("anomaly: a division by zero at step 37 of a custom LSTM cell, in forward", "[debug]") {
  Model m;
  Tensor x = inputs(), g = zero_gain_at(37);
  // Off: the NaN/Inf flows through silently.
  CHECK_FALSE(std::isfinite(m.encoder->custom(x, g, false).item()));
  Tape::current().clear();
  DetectAnomaly guard;
  for (bool grad : {true, false}) {
    INFO("grad mode " << grad);
    std::optional<NoGradGuard> no_grad;
    if (!grad) no_grad.emplace();
    std::string msg = anomaly_of([&] { m.encoder->custom(x, g, false); });
    CHECK_THAT(msg, Contains("forward of \"encoder.cell step 37: div\""));
    CHECK_THAT(msg, Contains("output 0 (4, 8) float32 holds"));
    CHECK_THAT(msg, Contains("NaN/Inf of 32"));
    CHECK_THAT(msg, Contains("inputs (4, 8), (4, 1)"));
    CHECK_THAT(msg, !Contains("inputs holding NaN/Inf"));  // the inputs were finite: div made it
    Tape::current().clear();
  }
}

TEST_CASE("anomaly: a gradient blowing up at step 37 of a custom LSTM cell, in backward", "[debug]") {
  Model m;
  Tensor x = inputs();
  {
    Tensor loss = m.encoder->custom(x, tiny_gain_at(37), true);
    CHECK(std::isfinite(loss.item()));  // forward is fine: log(1.4e-45) = -103.3
    DetectAnomaly guard;
    std::string msg = anomaly_of([&] { loss.backward(); });
    CHECK_THAT(msg, Contains("backward of \"log\" produced a non-finite gradient"));
    CHECK_THAT(msg, Contains("its scope was not kept: run the forward under DetectAnomaly too"));
    CHECK_THAT(msg, Contains("the gradient of input 0 (4, 1) float32 holds 4 NaN/Inf of 4"));
    CHECK_THAT(msg, Contains("forward op log that recorded this node had inputs (4, 1), -, -, - and output (4, 1)"));
  }
  Tape::current().clear();
  {  // recorded with the guard on, backward checked as well
    DetectAnomaly guard;
    Tensor loss = m.encoder->custom(x, tiny_gain_at(37), true);
    CHECK_THAT(anomaly_of([&] { loss.backward(); }), Contains("\"encoder.cell step 37: log\""));
  }
  Tape::current().clear();
}

TEST_CASE("anomaly: the built-in LSTM names its module path, layer and step", "[debug]") {
  Model m;
  Tensor x = inputs();
  DetectAnomaly guard;
  SECTION("a NaN weight in layer 1") {
    m.encoder->lstm->parameter("weight_hh_l1").span<float>()[5] = std::numeric_limits<float>::quiet_NaN();
    std::string msg = anomaly_of([&] { m.encoder->lstm->forward(x); });
    CHECK_THAT(msg, Contains("forward of \"encoder.lstm layer 1 step 0: lstm_cell\""));
    CHECK_THAT(msg, Contains("inputs (4, 40, 32), (4, 8), (4, 8), (32, 8)"));
    CHECK_THAT(msg, Contains("inputs holding NaN/Inf after it: 0, 3"));  // 0: xp, overwritten with the gates
  }
  SECTION("an infinite input at step 21 reaches the input projection first") {
    x.span<float>()[size_t(21 * I)] = std::numeric_limits<float>::infinity();
    std::string msg = anomaly_of([&] { m.encoder->lstm->forward(x); });
    CHECK_THAT(msg, Contains("forward of \"encoder.lstm layer 0: linear\""));
    CHECK_THAT(msg, Contains("output 0 (4, 40, 32) float32"));
    CHECK_THAT(msg, Contains("inputs holding NaN/Inf after it: 0 ("));
  }
  Tape::current().clear();
}

TEST_CASE("anomaly: a finite training step passes with the guard on and gives the same values", "[debug]") {
  Model a, b;
  Tensor x = inputs();
  Tensor la = sum(a.encoder->lstm->forward(x).output);
  la.backward();
  DetectAnomaly guard;
  Tensor lb = sum(b.encoder->lstm->forward(x).output);
  lb.backward();
  CHECK(la.item() == lb.item());
  CHECK(a.encoder->lstm->parameter("weight_hh_l0").grad().to_vector() ==
        b.encoder->lstm->parameter("weight_hh_l0").grad().to_vector());
}

TEST_CASE("profiler: table and Chrome trace of an LSTM training step", "[debug]") {
  Model m;
  Tensor x = inputs();
  TempDir dir;
  const auto path = dir.path / "trace.json";
  std::string table;
  size_t n_events = 0;
  {
    Profiler prof;
    CHECK_THROWS_WITH(Profiler(), Contains("already recording"));
    Tensor loss = mean(m.encoder->lstm->forward(x).output);
    loss.backward();
    { NoGradGuard no_grad; m.encoder->cell->gates->forward(zeros({B, I + H})); }
    table = prof.table();
    n_events = prof.num_events();
    prof.save_chrome_trace(path.string());
  }
  // 2 layers x 40 steps of lstm_cell, forward and backward; the no-grad Linear is counted too.
  CHECK_THAT(table, Contains("lstm_cell"));
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  const auto& events = j.at("traceEvents");
  REQUIRE(events.size() == n_events);
  std::map<std::pair<std::string, std::string>, int> count;
  std::map<int, std::vector<std::pair<double, double>>> spans;
  int64_t bytes = 0;
  for (const auto& e : events) {
    CHECK(e.at("ph") == "X");
    count[{e.at("name").get<std::string>(), e.at("cat").get<std::string>()}]++;
    spans[e.at("tid").get<int>()].push_back({e.at("ts").get<double>(), e.at("dur").get<double>()});
    bytes += e.at("args").at("bytes").get<int64_t>();
    if (e.at("name") == "lstm_cell" && e.at("cat") == "forward")
      CHECK_THAT(e.at("args").at("scope").get<std::string>(), Contains("encoder.lstm layer"));
  }
  CHECK(bytes > 0);
  CHECK((count[{"lstm_cell", "forward"}]) == 2 * T);
  CHECK((count[{"lstm_cell", "backward"}]) == 2 * T);
  CHECK((count[{"linear", "forward"}]) == 3);  // two projections and the no-grad Linear
  CHECK((count[{"linear", "backward"}]) == 2);
  // Every op the table lists is in the trace, and the reverse.
  for (auto& [key, n] : count) {
    INFO(key.first << " " << key.second);
    CHECK_THAT(table, Contains(key.first));
  }
  CHECK_THAT(table, Contains("encoder.lstm layer 1"));
  CHECK_THAT(table, Contains("encoder.cell.gates"));
  for (auto& [tid, v] : spans) {
    std::sort(v.begin(), v.end());
    for (size_t i = 1; i < v.size(); ++i) {
      INFO("event " << i << " at " << v[i].first << " overlaps its predecessor");
      CHECK(v[i - 1].first + v[i - 1].second <= v[i].first + 1e-3);
    }
  }
  CHECK_THROWS_WITH(Profiler().save_chrome_trace((dir.path / "no such dir" / "t.json").string()),
                    Contains("no such dir"));
}
