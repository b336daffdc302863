// RNN, LSTM and GRU (cells and sequence layers): values against the equations worked out by hand,
// the sequence loop against step-by-step cells, shapes for every option, error messages, lengths,
// the unrolled tape, and float64 gradient checks w.r.t. input, initial states and every parameter.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>

#include "autograd/seqgrad.h"
#include "layers/layers.h"

using namespace seqgrad;

namespace {

enum class Kind { rnn_tanh, rnn_relu, lstm, gru };
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::rnn_tanh: return "RNN(tanh)";
    case Kind::rnn_relu: return "RNN(relu)";
    case Kind::lstm: return "LSTM";
    case Kind::gru: return "GRU";
  }
  return "?";
}
constexpr Kind kAllKinds[] = {Kind::rnn_tanh, Kind::rnn_relu, Kind::lstm, Kind::gru};

struct NetConfig {
  Kind kind = Kind::lstm;
  int64_t input = 3, hidden = 4, layers = 1;
  bool bidirectional = false, batch_first = true;
  double dropout = 0;
  DType dtype = DType::f64;
  uint64_t seed = 0;
  std::string describe() const {
    return fmt::format("{} layers={} bidirectional={} batch_first={}", kind_name(kind), layers, bidirectional,
                       batch_first);
  }
};

// Any of the three sequence layers behind one call: (x, h0, c0, lengths) -> (output, h_n, c_n).
struct Net {
  std::shared_ptr<Module> module;
  std::function<LSTMOutput(const Tensor&, const Tensor&, const Tensor&, std::span<const int64_t>)> run;
  bool lstm = false;
};

Net make_net(const NetConfig& c) {
  if (c.kind == Kind::lstm) {
    auto m = std::make_shared<LSTM>(LSTMOptions{.input_size = c.input,
                                                .hidden_size = c.hidden,
                                                .num_layers = c.layers,
                                                .batch_first = c.batch_first,
                                                .dropout = c.dropout,
                                                .bidirectional = c.bidirectional,
                                                .dtype = c.dtype,
                                                .seed = c.seed});
    return {m, [m](auto& x, auto& h0, auto& c0, auto len) { return m->forward(x, {h0, c0}, len); }, true};
  }
  if (c.kind == Kind::gru) {
    auto m = std::make_shared<GRU>(GRUOptions{.input_size = c.input,
                                              .hidden_size = c.hidden,
                                              .num_layers = c.layers,
                                              .batch_first = c.batch_first,
                                              .dropout = c.dropout,
                                              .bidirectional = c.bidirectional,
                                              .dtype = c.dtype,
                                              .seed = c.seed});
    return {m, [m](auto& x, auto& h0, auto&, auto len) {
              auto r = m->forward(x, h0, len);
              return LSTMOutput{r.output, r.h_n, {}};
            }};
  }
  auto m = std::make_shared<RNN>(
      RNNOptions{.input_size = c.input,
                 .hidden_size = c.hidden,
                 .num_layers = c.layers,
                 .nonlinearity = c.kind == Kind::rnn_relu ? Nonlinearity::relu : Nonlinearity::tanh,
                 .batch_first = c.batch_first,
                 .dropout = c.dropout,
                 .bidirectional = c.bidirectional,
                 .dtype = c.dtype,
                 .seed = c.seed});
  return {m, [m](auto& x, auto& h0, auto&, auto len) {
            auto r = m->forward(x, h0, len);
            return LSTMOutput{r.output, r.h_n, {}};
          }};
}

// The matching cell, with its parameters copied from one (layer, direction) of a sequence layer.
// step(x_t, {h, c}) -> {h', c'}.
struct Cell {
  std::shared_ptr<Module> module;
  std::function<LSTMState(const Tensor&, const LSTMState&)> step;
};

Cell make_cell(Kind kind, const Module& seq, int64_t input, int64_t hidden, const std::string& suffix) {
  Cell c;
  if (kind == Kind::lstm) {
    auto m =
        std::make_shared<LSTMCell>(LSTMCellOptions{.input_size = input, .hidden_size = hidden, .dtype = DType::f64});
    c = {m, [m](auto& x, auto& s) { return m->forward(x, s); }};
  } else if (kind == Kind::gru) {
    auto m = std::make_shared<GRUCell>(GRUCellOptions{.input_size = input, .hidden_size = hidden, .dtype = DType::f64});
    c = {m, [m](auto& x, auto& s) { return LSTMState{m->forward(x, s.h), {}}; }};
  } else {
    auto nl = kind == Kind::rnn_relu ? Nonlinearity::relu : Nonlinearity::tanh;
    auto m = std::make_shared<RNNCell>(
        RNNCellOptions{.input_size = input, .hidden_size = hidden, .nonlinearity = nl, .dtype = DType::f64});
    c = {m, [m](auto& x, auto& s) { return LSTMState{m->forward(x, s.h), {}}; }};
  }
  NamedTensors src;
  for (const char* n : {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}) src.emplace_back(n, seq.parameter(n + suffix));
  c.module->load_parameters(src);
  return c;
}

Tensor rand(const Shape& s, Generator& gen, double lo = -1, double hi = 1) {
  return uniform(s, lo, hi, gen, DType::f64);
}

// output, h_n and c_n flattened into one vector, so one gradcheck covers them all.
Tensor flat(const LSTMOutput& r) {
  std::vector<Tensor> parts{reshape(r.output, {-1}), reshape(r.h_n, {-1})};
  if (r.c_n.defined()) parts.push_back(reshape(r.c_n, {-1}));
  return concat(parts, 0);
}

}  // namespace

// ---------------------------------------------------------------- values by hand
// Weights written out row by row in PyTorch's gate order; expected values worked out from the
// header equations in double precision (I = 2, H = 2, B = 1).
TEST_CASE("LSTM step matches the equations worked by hand", "[layers][lstm]") {
  NamedTensors p{{"weight_ih", tensor({0.1, 0.2, -0.3, 0.4,   // i
                                       -0.5, 0.6, 0.7, -0.8,  // f
                                       0.9, 0.1, -0.2, 0.3,   // g
                                       0.4, -0.5, 0.6, 0.7},  // o
                                      {8, 2}, DType::f64)},
                 {"weight_hh", tensor({0.15, -0.25, 0.35, 0.45, -0.55, 0.65, 0.75, -0.85, 0.05, 0.95, -0.15, 0.25, 0.3,
                                       -0.4, -0.6, 0.2},
                                      {8, 2}, DType::f64)},
                 {"bias_ih", tensor({0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08}, DType::f64)},
                 {"bias_hh", tensor({-0.08, 0.07, -0.06, 0.05, -0.04, 0.03, -0.02, 0.01}, DType::f64)}};
  Tensor x = tensor({0.5, -1.0}, {1, 2}, DType::f64);
  Tensor h = tensor({0.2, -0.1}, {1, 2}, DType::f64), c = tensor({-0.3, 0.4}, {1, 2}, DType::f64);
  // i = sigmoid(W_ii x + b_ii + W_hi h + b_hi), ...; c' = f c + i g; h' = o tanh(c').
  std::vector<double> h_expected{0.0319339496951135, 0.0724069454307378},
      c_expected{0.0456146069774976, 0.188152944325966};

  LSTMCell cell({.input_size = 2, .hidden_size = 2, .dtype = DType::f64});
  cell.load_parameters(p);
  LSTMState s = cell.forward(x, {h, c});
  for (int j = 0; j < 2; ++j) {
    CHECK(s.h.to_vector()[j] == Approx(h_expected[j]).epsilon(1e-13));
    CHECK(s.c.to_vector()[j] == Approx(c_expected[j]).epsilon(1e-13));
  }
  // The sequence layer, one step, same numbers.
  LSTM lstm({.input_size = 2, .hidden_size = 2, .dtype = DType::f64});
  NamedTensors pl;
  for (auto& [n, t] : p) pl.emplace_back(n + "_l0", t);
  lstm.load_parameters(pl);
  LSTMOutput r = lstm.forward(reshape(x, {1, 1, 2}), {reshape(h, {1, 1, 2}), reshape(c, {1, 1, 2})});
  for (int j = 0; j < 2; ++j) {
    CHECK(r.output.to_vector()[j] == Approx(h_expected[j]).epsilon(1e-13));
    CHECK(r.h_n.to_vector()[j] == Approx(h_expected[j]).epsilon(1e-13));
    CHECK(r.c_n.to_vector()[j] == Approx(c_expected[j]).epsilon(1e-13));
  }
}

TEST_CASE("GRU step matches the equations worked by hand", "[layers][gru]") {
  NamedTensors p{{"weight_ih", tensor({0.3, -0.2, 0.1, 0.4,    // r
                                       -0.5, 0.6, 0.2, -0.1,   // z
                                       0.7, 0.8, -0.9, 0.05},  // n
                                      {6, 2}, DType::f64)},
                 {"weight_hh", tensor({0.25, -0.35, 0.45, 0.55, -0.65, 0.75, 0.85, -0.95, 0.12, -0.22, 0.32, 0.42},
                                      {6, 2}, DType::f64)},
                 {"bias_ih", tensor({0.01, -0.02, 0.03, -0.04, 0.05, -0.06}, DType::f64)},
                 {"bias_hh", tensor({0.06, -0.05, 0.04, -0.03, 0.02, -0.01}, DType::f64)}};
  Tensor x = tensor({1.0, 0.5}, {1, 2}, DType::f64), h = tensor({-0.4, 0.3}, {1, 2}, DType::f64);
  // n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) n + z h. Applying r before W_hn
  // (the other GRU variant) would give 0.0960873602954168, -0.355656779916495 instead.
  std::vector<double> expected{0.0950280652495495, -0.355746676019256};
  GRUCell cell({.input_size = 2, .hidden_size = 2, .dtype = DType::f64});
  cell.load_parameters(p);
  Tensor h2 = cell.forward(x, h);
  for (int j = 0; j < 2; ++j) CHECK(h2.to_vector()[j] == Approx(expected[j]).epsilon(1e-13));
}

TEST_CASE("RNN cell step matches the equation (tanh and relu)", "[layers][rnn]") {
  for (auto nl : {Nonlinearity::tanh, Nonlinearity::relu}) {
    RNNCell cell({.input_size = 2, .hidden_size = 1, .nonlinearity = nl, .dtype = DType::f64});
    cell.load_parameters({{"weight_ih", tensor({0.5, -0.25}, {1, 2}, DType::f64)},
                          {"weight_hh", tensor({0.75}, {1, 1}, DType::f64)},
                          {"bias_ih", tensor({0.1}, DType::f64)},
                          {"bias_hh", tensor({-0.3}, DType::f64)}});
    Tensor h = cell.forward(tensor({1.0, 2.0, -1.0, 0.0}, {2, 2}, DType::f64), tensor({0.4, -0.8}, {2, 1}, DType::f64));
    double pre0 = 0.5 - 0.5 + 0.1 + 0.3 - 0.3, pre1 = -0.5 + 0.1 - 0.6 - 0.3;  // 0.1, -1.3
    auto act = [&](double v) { return nl == Nonlinearity::tanh ? std::tanh(v) : std::max(v, 0.0); };
    CHECK(h.to_vector()[0] == Approx(act(pre0)).epsilon(1e-14));
    CHECK(h.to_vector()[1] == Approx(act(pre1)).margin(1e-15));
  }
}

// ---------------------------------------------------------------- the loop against the cells
TEST_CASE("sequence layers equal their cell stepped by hand, both directions", "[layers][recurrent]") {
  for (Kind kind : kAllKinds) {
    INFO(kind_name(kind));
    NetConfig cfg{.kind = kind, .bidirectional = true, .seed = 3};
    Net net = make_net(cfg);
    Generator gen(4);
    const int64_t B = 2, T = 5, H = cfg.hidden;
    Tensor x = rand({B, T, 3}, gen), h0 = rand({2, B, H}, gen), c0 = rand({2, B, H}, gen);
    LSTMOutput r = net.run(x, h0, net.lstm ? c0 : Tensor(), {});
    for (int d = 0; d < 2; ++d) {
      Cell cell = make_cell(kind, *net.module, 3, H, d ? "_l0_reverse" : "_l0");
      LSTMState s{select(h0, 0, d), net.lstm ? select(c0, 0, d) : Tensor()};
      for (int64_t k = 0; k < T; ++k) {
        int64_t t = d ? T - 1 - k : k;
        s = cell.step(select(x, 1, t), s);
        CHECK(allclose(slice(select(r.output, 1, t), 1, d * H, (d + 1) * H), s.h, 1e-12, 1e-14));
      }
      CHECK(allclose(select(r.h_n, 0, d), s.h, 1e-12, 1e-14));
      if (net.lstm) CHECK(allclose(select(r.c_n, 0, d), s.c, 1e-12, 1e-14));
    }
  }
}

TEST_CASE("batch_first = false is the transposed layout, same numbers", "[layers][recurrent]") {
  for (Kind kind : kAllKinds) {
    INFO(kind_name(kind));
    NetConfig cfg{.kind = kind, .layers = 2, .bidirectional = true, .seed = 5};
    Net a = make_net(cfg);
    cfg.batch_first = false;
    Net b = make_net(cfg);
    Generator gen(6);
    Tensor x = rand({3, 4, 3}, gen), h0 = rand({4, 3, 4}, gen), c0 = rand({4, 3, 4}, gen);
    std::vector<int64_t> lengths{4, 2, 3};
    LSTMOutput ra = a.run(x, h0, a.lstm ? c0 : Tensor(), lengths);
    LSTMOutput rb = b.run(transpose(x, 0, 1), h0, b.lstm ? c0 : Tensor(), lengths);
    CHECK(allclose(transpose(rb.output, 0, 1), ra.output, 1e-12, 1e-14));
    CHECK(allclose(rb.h_n, ra.h_n, 1e-12, 1e-14));
  }
}

// ---------------------------------------------------------------- shapes and errors
TEST_CASE("output shapes for every option combination", "[layers][recurrent][shapes]") {
  const int64_t B = 3, T = 5, I = 2, H = 4;
  for (Kind kind : kAllKinds)
    for (int64_t layers : {1, 3})
      for (bool bidir : {false, true})
        for (bool batch_first : {true, false})
          for (bool with_h0 : {false, true})
            for (bool with_lengths : {false, true}) {
              NetConfig cfg{.kind = kind,
                            .input = I,
                            .hidden = H,
                            .layers = layers,
                            .bidirectional = bidir,
                            .batch_first = batch_first,
                            .dropout = 0.3,
                            .dtype = DType::f32};
              INFO(cfg.describe() << " h0=" << with_h0 << " lengths=" << with_lengths);
              Net net = make_net(cfg);
              int64_t D = bidir ? 2 : 1;
              Tensor x = zeros(batch_first ? Shape{B, T, I} : Shape{T, B, I});
              Tensor h0 = with_h0 ? zeros({layers * D, B, H}) : Tensor();
              std::vector<int64_t> lengths{5, 1, 3};
              LSTMOutput r = net.run(x, h0, net.lstm ? h0 : Tensor(),
                                     with_lengths ? std::span<const int64_t>(lengths) : std::span<const int64_t>());
              CHECK(r.output.shape() == (batch_first ? Shape{B, T, D * H} : Shape{T, B, D * H}));
              CHECK(r.h_n.shape() == Shape{layers * D, B, H});
              CHECK(r.c_n.defined() == net.lstm);
              if (net.lstm) CHECK(r.c_n.shape() == Shape{layers * D, B, H});
              // Parameter shapes: (G*H, in) with in = D*H above the first layer.
              int64_t G = kind == Kind::lstm ? 4 : kind == Kind::gru ? 3 : 1;
              CHECK(net.module->parameter("weight_ih_l0").shape() == Shape{G * H, I});
              CHECK(net.module->parameter(fmt::format("weight_ih_l{}", layers - 1)).shape() ==
                    Shape{G * H, layers > 1 ? D * H : I});
              CHECK(net.module->parameter("weight_hh_l0").shape() == Shape{G * H, H});
              CHECK(net.module->parameter("bias_hh_l0").shape() == Shape{G * H});
              CHECK(net.module->parameters().size() == size_t(4 * layers * D));
            }
}

TEST_CASE("parameter names follow PyTorch, with _reverse and without bias", "[layers][recurrent]") {
  LSTM lstm({.input_size = 3, .hidden_size = 2, .num_layers = 2, .bidirectional = true});
  std::vector<std::string> names;
  for (auto& [n, t] : lstm.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                          "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
                                          "bias_hh_l0_reverse", "weight_ih_l1", "weight_hh_l1", "bias_ih_l1",
                                          "bias_hh_l1", "weight_ih_l1_reverse", "weight_hh_l1_reverse",
                                          "bias_ih_l1_reverse", "bias_hh_l1_reverse"});
  GRU gru({.input_size = 3, .hidden_size = 2, .bias = false});
  CHECK(gru.named_parameters().size() == 2);
  CHECK(gru.forward(ones({1, 2, 3})).output.shape() == Shape{1, 2, 2});
  GRUCell cell({.input_size = 3, .hidden_size = 2});
  CHECK(cell.named_parameters()[1].first == "weight_hh");
  CHECK(cell.parameter("weight_ih").shape() == Shape{6, 3});
}

TEST_CASE("clear exceptions for bad inputs, states and lengths", "[layers][recurrent][errors]") {
  LSTM lstm({.input_size = 5, .hidden_size = 8, .num_layers = 2});
  CHECK_THROWS_WITH(lstm.forward(zeros({5, 7})),
                    "LSTM: input must have 3 dimensions (batch, seq, feature), got (5, 7)");
  CHECK_THROWS_WITH(lstm.forward(zeros({3, 7, 4})),
                    Catch::Contains("LSTM: input.size(-1) must be equal to input_size. Expected 5, got 4"));
  CHECK_THROWS_WITH(lstm.forward(zeros({3, 7, 5}, DType::f64)),
                    Catch::Contains("LSTM: input is float64 but the parameters are float32"));
  CHECK_THROWS_WITH(
      lstm.forward(zeros({3, 7, 5}), {zeros({1, 3, 8}), {}}),
      "LSTM: h0 must have shape (2, 3, 8) (num_layers * num_directions, batch, hidden_size), got (1, 3, 8)");
  CHECK_THROWS_WITH(lstm.forward(zeros({3, 7, 5}), {{}, zeros({2, 3, 7})}),
                    Catch::Contains("LSTM: c0 must have shape (2, 3, 8)"));
  std::vector<int64_t> too_few{7, 7}, zero{7, 0, 3}, too_long{7, 8, 3}, ok{7, 1, 3};
  CHECK_THROWS_WITH(lstm.forward(zeros({3, 7, 5}), {}, too_few),
                    "LSTM: lengths has 2 entries but the batch has 3 sequences");
  CHECK_THROWS_WITH(lstm.forward(zeros({3, 7, 5}), {}, zero),
                    "LSTM: lengths[1] = 0 is out of range [1, 7] for an input of 7 steps");
  CHECK_THROWS_WITH(lstm.forward(zeros({3, 7, 5}), {}, too_long),
                    Catch::Contains("lengths[1] = 8 is out of range [1, 7]"));
  CHECK_NOTHROW(lstm.forward(zeros({3, 7, 5}), {}, ok));
  CHECK_THROWS_WITH(lstm.forward(zeros({3, 0, 5})), Catch::Contains("has no batch or no steps"));

  GRU gru({.input_size = 5, .hidden_size = 8, .batch_first = false, .bidirectional = true});
  CHECK_THROWS_WITH(gru.forward(zeros({7, 5})), "GRU: input must have 3 dimensions (seq, batch, feature), got (7, 5)");
  CHECK_THROWS_WITH(gru.forward(zeros({7, 3, 5}), zeros({1, 3, 8})),
                    Catch::Contains("GRU: h0 (hx) must have shape (2, 3, 8)"));
  RNN rnn({.input_size = 5, .hidden_size = 8});
  CHECK_THROWS_WITH(rnn.forward(Tensor()), "RNN: input is an undefined tensor");

  LSTMCell cell({.input_size = 5, .hidden_size = 8});
  CHECK_THROWS_WITH(cell.forward(zeros({3, 4})),
                    "LSTMCell: input must have shape (batch, 5) (input_size = 5), got (3, 4)");
  CHECK_THROWS_WITH(cell.forward(zeros({3, 5}), {zeros({3, 8}), zeros({2, 8})}),
                    "LSTMCell: c must have shape (3, 8) (batch, hidden_size), got (2, 8)");
  CHECK_THROWS_WITH(GRUCell({.input_size = 5, .hidden_size = 8}).forward(zeros({3, 5}), zeros({3, 5})),
                    Catch::Contains("GRUCell: h must have shape (3, 8)"));
  CHECK_THROWS_WITH(RNNCell({.input_size = 5, .hidden_size = 8}).forward(zeros({5})),
                    Catch::Contains("RNNCell: input must have shape (batch, 5)"));

  CHECK_THROWS_WITH(LSTM({.input_size = 5, .hidden_size = 0}),
                    Catch::Contains("LSTM: input_size, hidden_size and num_layers must be positive"));
  CHECK_THROWS_WITH(GRU({.input_size = 5, .hidden_size = 8, .num_layers = 2, .dropout = -0.1}),
                    Catch::Contains("GRU: dropout must be in [0, 1], got -0.1"));
}

// ---------------------------------------------------------------- variable lengths
TEST_CASE("lengths: padded steps change neither state nor output", "[layers][recurrent][lengths]") {
  for (Kind kind : kAllKinds)
    for (bool bidir : {false, true}) {
      NetConfig cfg{.kind = kind, .layers = 2, .bidirectional = bidir, .seed = 8};
      INFO(cfg.describe());
      Net net = make_net(cfg);
      Generator gen(9);
      const int64_t B = 3, T = 5, H = 4, LD = bidir ? 4 : 2;
      Tensor x = rand({B, T, 3}, gen), h0 = rand({LD, B, H}, gen), c0 = rand({LD, B, H}, gen);
      std::vector<int64_t> lengths{5, 2, 4};
      LSTMOutput r = net.run(x, h0, net.lstm ? c0 : Tensor(), lengths);
      for (int64_t b = 0; b < B; ++b) {
        int64_t L = lengths[b];
        // The same sequence alone, cut to its own length: what PyTorch's packed sequences compute.
        Tensor xb = slice(slice(x, 0, b, b + 1), 1, 0, L);
        LSTMOutput rb = net.run(xb, slice(h0, 1, b, b + 1), net.lstm ? slice(c0, 1, b, b + 1) : Tensor(), {});
        Tensor out_b = slice(select(r.output, 0, b), 0, 0, L);
        CHECK(allclose(out_b, select(rb.output, 0, 0), 1e-12, 1e-14));
        CHECK(allclose(slice(r.h_n, 1, b, b + 1), rb.h_n, 1e-12, 1e-14));
        if (net.lstm) CHECK(allclose(slice(r.c_n, 1, b, b + 1), rb.c_n, 1e-12, 1e-14));
        for (double v : slice(select(r.output, 0, b), 0, L, T).to_vector()) CHECK(v == 0.0);
      }
      // Padded inputs do not matter: change them, nothing changes, and they get no gradient.
      Tensor x2 = x.clone();
      x2.data<double>()[(1 * T + 3) * 3] = 100.0;  // sequence 1, step 3 > its length 2
      LSTMOutput r2 = net.run(x2, h0, net.lstm ? c0 : Tensor(), lengths);
      CHECK(allclose(r2.output, r.output, 0, 0));
      CHECK(allclose(r2.h_n, r.h_n, 0, 0));
      Tensor xg = x.clone().requires_grad_();
      sum(flat(net.run(xg, h0, net.lstm ? c0 : Tensor(), lengths))).backward();
      for (double v : slice(select(xg.grad(), 0, 1), 0, 2, T).to_vector()) CHECK(v == 0.0);
      net.module->zero_grad();
    }
}

TEST_CASE("lengths all equal to T give the unmasked result", "[layers][recurrent][lengths]") {
  Net net = make_net({.kind = Kind::gru, .bidirectional = true});
  Generator gen(10);
  Tensor x = rand({2, 4, 3}, gen);
  std::vector<int64_t> full{4, 4};
  Tape::current().clear();
  CHECK(allclose(net.run(x, {}, {}, full).output, net.run(x, {}, {}, {}).output, 0, 0));
  Tape::current().clear();
  // Both write the output in place (no sequence ends early): the gradients agree as well.
  Tensor w = rand({2, 4, 2 * 4}, gen);  // (batch, steps, directions * hidden)
  auto input_grad = [&](std::span<const int64_t> lengths) {
    Tensor xi = x.detach().requires_grad_();
    sum(mul(net.run(xi, {}, {}, lengths).output, w)).backward();
    return xi.grad();
  };
  CHECK(allclose(input_grad(full), input_grad({}), 0, 0));
}

// ---------------------------------------------------------------- BPTT through the tape
TEST_CASE("an L-step RNN leaves L steps of ops on the tape and h0's gradient crosses them all",
          "[layers][recurrent][tape]") {
  for (int64_t L : {1, 4, 9}) {
    INFO("L = " << L);
    RNN rnn({.input_size = 3, .hidden_size = 4, .dtype = DType::f64, .seed = 1});
    Generator gen(2);
    Tensor x = rand({2, L, 3}, gen).requires_grad_(), h0 = rand({1, 2, 4}, gen).requires_grad_();
    Tape::current().clear();
    RNNOutput r = rnn.forward(x, h0);
    std::map<Op, int> count;
    for (const Node& n : Tape::current().nodes()) ++count[n.op];
    CHECK(count[Op::RnnCell] == L);  // one fused tanh(xp_t + h W_hh^T) per step, the product included
    CHECK(count[Op::Linear] == 1);   // one input projection for all steps (bias b_ih + b_hh)
    CHECK(count[Op::Select] == 1);      // h0's layer slice; each step reads the projection in place
    // A loss on the last step only: its gradient reaches h0 only by crossing every earlier step.
    sum(select(r.output, 1, L - 1)).backward();
    REQUIRE(h0.grad().defined());
    double norm = 0;
    for (double v : h0.grad().to_vector()) norm += std::abs(v);
    CHECK(norm > 1e-6);
    CHECK(Tape::current().size() == 0);  // freed by backward
    // And it is the right gradient: compare with central differences.
    GradcheckResult gc = gradcheck(
        [&](const std::vector<Tensor>& in) { return select(rnn.forward(in[0], in[1]).output, 1, L - 1); }, {x, h0});
    INFO(gc.summary());
    CHECK(gc.ok);
  }
  // With W_hh = 0 the steps are cut apart: h0 influences only step 0.
  RNN rnn({.input_size = 3, .hidden_size = 4, .dtype = DType::f64});
  rnn.parameter("weight_hh_l0").fill_(0.0);
  Tensor h0 = ones({1, 2, 4}, DType::f64).requires_grad_();
  sum(select(rnn.forward(ones({2, 3, 3}, DType::f64), h0).output, 1, 2)).backward();
  if (h0.grad().defined())
    for (double v : h0.grad().to_vector()) CHECK(v == 0.0);
}

TEST_CASE("dropout between layers: training only, seeded", "[layers][recurrent][dropout]") {
  for (Kind kind : {Kind::lstm, Kind::gru, Kind::rnn_tanh}) {
    INFO(kind_name(kind));
    NetConfig cfg{.kind = kind, .layers = 2, .dropout = 0.5, .seed = 12};
    Net a = make_net(cfg), b = make_net(cfg);
    cfg.dropout = 0;
    Net plain = make_net(cfg);
    Generator gen(13);
    Tensor x = rand({2, 4, 3}, gen);
    NoGradGuard no_grad;
    Tensor train_out = a.run(x, {}, {}, {}).output;
    CHECK(allclose(b.run(x, {}, {}, {}).output, train_out, 0, 0));  // same seed, same masks
    CHECK_FALSE(allclose(plain.run(x, {}, {}, {}).output, train_out, 1e-6));
    a.module->eval();
    CHECK(allclose(a.run(x, {}, {}, {}).output, plain.run(x, {}, {}, {}).output, 0, 0));
  }
}

// ---------------------------------------------------------------- gradient checks
namespace {
struct GradCase {
  NetConfig cfg;
  bool lengths;
};
std::vector<GradCase> grad_cases() {
  std::vector<GradCase> out;
  for (Kind kind : kAllKinds)
    for (int64_t layers : {1, 2})
      for (bool bidir : {false, true})
        for (bool lengths : {false, true})
          // Time-major for half the cases: both layouts are covered for every kind.
          out.push_back({{.kind = kind,
                          .layers = layers,
                          .bidirectional = bidir,
                          .batch_first = !(layers == 2 && lengths),
                          .seed = 20},
                         lengths});
  return out;
}
}  // namespace

TEST_CASE("gradcheck (float64) of every layer w.r.t. input, h0, c0 and every parameter",
          "[layers][recurrent][gradcheck]") {
  GradCase c = GENERATE(from_range(grad_cases()));
  INFO(c.cfg.describe() << " lengths=" << c.lengths);
  Net net = make_net(c.cfg);
  const int64_t B = 3, T = 3, I = c.cfg.input, H = c.cfg.hidden, LD = c.cfg.layers * (c.cfg.bidirectional ? 2 : 1);
  Generator gen(21);
  Tensor x = rand(c.cfg.batch_first ? Shape{B, T, I} : Shape{T, B, I}, gen).requires_grad_();
  Tensor h0 = rand({LD, B, H}, gen).requires_grad_();
  Tensor c0 = net.lstm ? rand({LD, B, H}, gen).requires_grad_() : Tensor();
  std::vector<int64_t> lengths;
  if (c.lengths) lengths = {2, 3, 1};
  std::vector<Tensor> inputs{x, h0, c0};
  for (const Tensor& p : net.module->parameters()) inputs.push_back(p);
  GradcheckResult r =
      gradcheck([&](const std::vector<Tensor>& in) { return flat(net.run(in[0], in[1], in[2], lengths)); }, inputs);
  INFO(r.summary());
  CHECK(r.ok);
}

TEST_CASE("gradcheck of the cells w.r.t. input, state and parameters", "[layers][recurrent][gradcheck]") {
  Generator gen(22);
  Tensor x = rand({3, 3}, gen).requires_grad_(), h = rand({3, 4}, gen).requires_grad_(),
         c = rand({3, 4}, gen).requires_grad_();
  for (Kind kind : kAllKinds) {
    INFO(kind_name(kind));
    NetConfig cfg{.kind = kind, .seed = 23};
    Net seq = make_net(cfg);  // a source of parameters
    Cell cell = make_cell(kind, *seq.module, 3, 4, "_l0");
    std::vector<Tensor> inputs{x, h, kind == Kind::lstm ? c : Tensor()};
    for (const Tensor& p : cell.module->parameters()) inputs.push_back(p);
    GradcheckResult r = gradcheck(
        [&](const std::vector<Tensor>& in) {
          LSTMState s = cell.step(in[0], {in[1], in[2]});
          return s.c.defined() ? concat(std::vector<Tensor>{s.h, s.c}, 1) : s.h;
        },
        inputs);
    INFO(r.summary());
    CHECK(r.ok);
  }
}

// ---------------------------------------------------------------- the consumed projection
// The layers' cells overwrite their input projection with activations, then with its gradient
// (XpUse::consume). These cases reach the paths where that could go wrong: steps the loss never
// depends on, steps past every length, a retained graph, and misuse of the op.
TEST_CASE("consumed projections: unused and skipped steps get zero gradient", "[layers][recurrent][gradcheck]") {
  for (Kind kind : kAllKinds)
    for (bool bidir : {false, true}) {
      NetConfig cfg{.kind = kind, .bidirectional = bidir, .batch_first = !bidir, .seed = 31};
      INFO(cfg.describe());
      Net net = make_net(cfg);
      const int64_t B = 3, T = 4;
      Generator gen(32);
      Tensor x = rand(cfg.batch_first ? Shape{B, T, 3} : Shape{T, B, 3}, gen).requires_grad_();
      std::vector<Tensor> inputs{x};
      for (const Tensor& p : net.module->parameters()) inputs.push_back(p);
      const int time_axis = cfg.batch_first ? 1 : 0;
      // Only step 1's output: the forward direction never visits steps 2 and 3 in backward.
      GradcheckResult early = gradcheck(
          [&](const std::vector<Tensor>& in) { return select(net.run(in[0], {}, {}, {}).output, time_axis, 1); },
          inputs);
      INFO(early.summary());
      CHECK(early.ok);
      // Lengths below T: step 3 is never computed.
      const std::vector<int64_t> lengths{2, 3, 1};
      GradcheckResult skipped = gradcheck(
          [&](const std::vector<Tensor>& in) { return flat(net.run(in[0], {}, {}, lengths)); }, inputs);
      INFO(skipped.summary());
      CHECK(skipped.ok);
    }
}

TEST_CASE("consumed projections survive a retained graph", "[layers][recurrent]") {
  for (Kind kind : kAllKinds) {
    INFO(kind_name(kind));
    Net net = make_net({.kind = kind, .seed = 33});
    Generator gen(34);
    Tensor x = rand({2, 5, 3}, gen).requires_grad_();
    auto grads = [&] {
      std::vector<Tensor> g{mul(x.grad(), 1.0)};  // copies: zero_grad drops the originals
      for (const Tensor& p : net.module->parameters()) g.push_back(mul(p.grad(), 1.0));
      return g;
    };
    Tensor loss = sum(net.run(x, {}, {}, {}).output);
    loss.backward();
    std::vector<Tensor> once = grads();
    x.zero_grad();
    net.module->zero_grad();
    Tensor again = sum(net.run(x, {}, {}, {}).output);
    again.backward(true);  // the activations must outlive this pass ...
    again.backward();      // ... so that this one reads them again
    std::vector<Tensor> twice = grads();
    for (size_t i = 0; i < once.size(); ++i) CHECK(allclose(twice[i], mul(once[i], 2.0), 1e-12, 1e-12));
  }
}

TEST_CASE("cells check what they write to: a consumed xp (one per PackedWeight, each step once) and out", "[layers][recurrent][errors]") {
  Generator gen(35);
  Tensor xp = rand({2, 3, 4}, gen), other = rand({2, 3, 4}, gen), h = rand({2, 4}, gen);
  PackedWeight w(rand({4, 4}, gen));
  rnn_cell(xp, 1, 0, h, w, false, XpUse::consume);
  CHECK_THROWS_WITH(rnn_cell(xp, 1, 0, h, w, false, XpUse::consume),
                    Catch::Contains("step 0 of xp (2, 3, 4) was already consumed"));
  CHECK_THROWS_WITH(rnn_cell(other, 1, 1, h, w, false, XpUse::consume), Catch::Contains("another xp"));
  CHECK_NOTHROW(rnn_cell(xp, 1, 1, h, w, false, XpUse::consume));
  CHECK_THROWS_WITH(rnn_cell(xp, 1, 2, h, w, false, XpUse::keep, h), Catch::Contains("same memory as h"));
  CHECK_THROWS_WITH(rnn_cell(xp, 1, 2, h, w, false, XpUse::keep, zeros({2, 5})), Catch::Contains("out is (2, 5)"));
}
