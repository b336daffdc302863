// The untaped forwards: streaming inference (RecurrentBase::initial_state / step) and the sequence
// forward when nothing records, which projects each step's input just before its cell. Both are
// bitwise equal to the recorded sequence forward for every layer type, stacked and bidirectional,
// at sizes that take the GEMM's direct and blocked paths, from zero and given states; and the
// errors (bidirectional, wrong shapes, a foreign state).
#include <catch2/catch.hpp>

#include <omp.h>

#include <cstring>
#include <memory>

#include "autograd/seqgrad.h"
#include "layers/layers.h"

using namespace seqgrad;

namespace {
struct Case {
  const char* name;
  std::shared_ptr<detail::RecurrentBase> layer;
  bool lstm;
};

Case make(int kind, int64_t I, int64_t H, int64_t L, DType dt, bool batch_first, bool bi = false) {
  switch (kind) {
    case 0: return {"RNN tanh", std::make_shared<RNN>(RNNOptions{.input_size = I, .hidden_size = H, .num_layers = L, .batch_first = batch_first, .bidirectional = bi, .dtype = dt, .seed = 3}), false};
    case 1: return {"RNN relu", std::make_shared<RNN>(RNNOptions{.input_size = I, .hidden_size = H, .num_layers = L, .nonlinearity = Nonlinearity::relu, .batch_first = batch_first, .bidirectional = bi, .dtype = dt, .seed = 4}), false};
    case 2: return {"LSTM", std::make_shared<LSTM>(LSTMOptions{.input_size = I, .hidden_size = H, .num_layers = L, .batch_first = batch_first, .bidirectional = bi, .dtype = dt, .seed = 5}), true};
    default: return {"GRU", std::make_shared<GRU>(GRUOptions{.input_size = I, .hidden_size = H, .num_layers = L, .batch_first = batch_first, .bidirectional = bi, .dtype = dt, .seed = 6}), false};
  }
}

LSTMOutput run_forward(const Case& c, const Tensor& x, const LSTMState& s0) {
  if (auto* l = dynamic_cast<LSTM*>(c.layer.get())) return l->forward(x, s0);
  if (auto* g = dynamic_cast<GRU*>(c.layer.get())) { auto o = g->forward(x, s0.h); return {o.output, o.h_n, {}}; }
  auto o = dynamic_cast<RNN*>(c.layer.get())->forward(x, s0.h);
  return {o.output, o.h_n, {}};
}

bool same_bits(const Tensor& a, const Tensor& b) {
  Tensor ac = a.contiguous() ? a : a.clone(), bc = b.contiguous() ? b : b.clone();
  return a.shape() == b.shape() && std::memcmp(ac.raw_rows(), bc.raw_rows(), size_t(a.numel()) * dtype_size(a.dtype())) == 0;
}
}  // namespace

TEST_CASE("step() equals forward() bit for bit: every layer type, stacked, given state", "[layers][stream]") {
  NoGradGuard no_grad;
  struct Size { int64_t B, I, H, L; };
  for (Size sz : {Size{1, 5, 8, 1}, Size{3, 7, 16, 2}, Size{2, 64, 96, 3}})
    for (int kind = 0; kind < 4; ++kind)
      for (DType dt : {DType::f32, DType::f64})
        for (bool given : {false, true}) {
          const bool batch_first = kind % 2 == 0;
          Case c = make(kind, sz.I, sz.H, sz.L, dt, batch_first);
          INFO(c.name << " B=" << sz.B << " I=" << sz.I << " H=" << sz.H << " L=" << sz.L << " " << dtype_name(dt) << " given=" << given);
          const int64_t T = 5;
          Generator gen(uint64_t(kind * 10 + sz.L));
          Tensor x = uniform(batch_first ? Shape{sz.B, T, sz.I} : Shape{T, sz.B, sz.I}, -1, 1, gen, dt);
          LSTMState s0;
          if (given) {
            s0.h = uniform({sz.L, sz.B, sz.H}, -0.5, 0.5, gen, dt);
            if (c.lstm) s0.c = uniform({sz.L, sz.B, sz.H}, -0.5, 0.5, gen, dt);
          }
          LSTMOutput ref = run_forward(c, x, s0);
          const Tensor h0_before = given ? s0.h.clone() : Tensor();
          StreamState s = c.layer->initial_state(sz.B, s0);
          for (int64_t t = 0; t < T; ++t) {
            const Tensor& y = c.layer->step(select(x, batch_first ? 1 : 0, t), s);
            REQUIRE(same_bits(y, select(ref.output, batch_first ? 1 : 0, t)));
          }
          if (given) CHECK(same_bits(s0.h, h0_before));  // the state is the stream's own copy
          for (int64_t l = 0; l < sz.L; ++l) {
            CHECK(same_bits(s.h[size_t(l)], select(ref.h_n, 0, l)));
            if (c.lstm) CHECK(same_bits(s.c[size_t(l)], select(ref.c_n, 0, l)));
          }
        }
}

TEST_CASE("the forward without grad equals the recorded one bit for bit, and records nothing", "[layers][stream]") {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);  // where the untaped forward runs
  struct Restore { int n; ~Restore() { omp_set_num_threads(n); } } restore{threads};
  struct Size { int64_t B, I, H, L; };
  // B = 16, H = 256: chunks of 4 (LSTM) and 5 (GRU) steps of the 6, and of 2 in float64
  for (Size sz : {Size{1, 5, 8, 1}, Size{3, 7, 16, 2}, Size{2, 64, 96, 2}, Size{16, 8, 256, 1}})
    for (int kind = 0; kind < 4; ++kind)
      for (DType dt : {DType::f32, DType::f64})
        for (bool bi : {false, true}) {
          const bool batch_first = (kind + int(bi)) % 2 == 0, given = bi;
          Case c = make(kind, sz.I, sz.H, sz.L, dt, batch_first, bi);
          INFO(c.name << " B=" << sz.B << " I=" << sz.I << " H=" << sz.H << " L=" << sz.L << " " << dtype_name(dt)
                      << " bidirectional=" << bi);
          const int64_t T = 6, LD = sz.L * (bi ? 2 : 1);
          Generator gen(uint64_t(kind * 10 + sz.L));
          Tensor x = uniform(batch_first ? Shape{sz.B, T, sz.I} : Shape{T, sz.B, sz.I}, -1, 1, gen, dt);
          LSTMState s0;
          if (given) {
            s0.h = uniform({LD, sz.B, sz.H}, -0.5, 0.5, gen, dt);
            if (c.lstm) s0.c = uniform({LD, sz.B, sz.H}, -0.5, 0.5, gen, dt);
          }
          Tape::current().clear();
          const LSTMOutput recorded = run_forward(c, x, s0);  // the parameters want grad: every step is an op
          REQUIRE(Tape::current().size() > size_t(T));
          Tape::current().clear();
          const Tensor h0_before = given ? s0.h.clone() : Tensor(), c0_before = given && c.lstm ? s0.c.clone() : Tensor();
          NoGradGuard no_grad;
          const LSTMOutput untaped = run_forward(c, x, s0);
          CHECK(Tape::current().size() == 0);
          CHECK(same_bits(untaped.output, recorded.output));
          CHECK(same_bits(untaped.h_n, recorded.h_n));
          if (c.lstm) CHECK(same_bits(untaped.c_n, recorded.c_n));
          if (given) CHECK(same_bits(s0.h, h0_before));  // read, never written
          if (given && c.lstm) CHECK(same_bits(s0.c, c0_before));
        }
}

TEST_CASE("step() records nothing on the tape, with grad mode on", "[layers][stream]") {
  LSTM lstm({.input_size = 3, .hidden_size = 4});
  StreamState s = lstm.initial_state(2);
  Tape::current().clear();
  Tensor y = lstm.step(ones({2, 3}), s);
  CHECK(Tape::current().size() == 0);
  CHECK_FALSE(y.requires_grad());
}

TEST_CASE("step() errors: bidirectional, bad input, foreign state", "[layers][stream][errors]") {
  GRU bi({.input_size = 3, .hidden_size = 4, .bidirectional = true});
  CHECK_THROWS_WITH(bi.initial_state(1), Catch::Contains("bidirectional") && Catch::Contains("GRU"));
  LSTM lstm({.input_size = 3, .hidden_size = 4, .num_layers = 2});
  CHECK_THROWS_WITH(lstm.initial_state(0), Catch::Contains("batch must be positive"));
  CHECK_THROWS_WITH(lstm.initial_state(2, {zeros({1, 2, 4}), {}}), Catch::Contains("h0"));
  StreamState s = lstm.initial_state(2);
  CHECK_THROWS_WITH(lstm.step(ones({2, 5}), s), Catch::Contains("LSTM: step: x must be") && Catch::Contains("(2, 3)"));
  CHECK_THROWS_WITH(lstm.step(ones({2, 3}, DType::f64), s), Catch::Contains("float32"));
  RNN rnn({.input_size = 3, .hidden_size = 4});
  StreamState other = rnn.initial_state(2);
  CHECK_THROWS_WITH(lstm.step(ones({2, 3}), other), Catch::Contains("not from this layer"));
}
