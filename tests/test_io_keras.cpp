// Keras SimpleRNN/LSTM/GRU weights mapped into PyTorch's layout: one step computed here with
// Keras's own equations on Keras-layout arrays must equal seqgrad's cell (PyTorch's equations) run
// with the converted weights.
#include <catch2/catch.hpp>

#include <cmath>

#include "autograd/seqgrad.h"
#include "io/checkpoint.h"
#include "io/keras.h"
#include "layers/layers.h"

using namespace seqgrad;
using namespace seqgrad::io;
using Catch::Contains;

namespace {

constexpr int64_t B = 2, I = 3, H = 2;

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// (B, I) x (I, N) + (B, H) x (H, N) [+ bias]: Keras's "z = x . kernel + h . recurrent_kernel + bias".
std::vector<double> affine(const Tensor& x, const Tensor& kernel, const std::vector<double>& bias) {
  int64_t n = kernel.size(1), in = kernel.size(0);
  std::vector<double> out(size_t(B * n));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < n; ++j) {
      double s = bias.empty() ? 0 : bias[size_t(j)];
      for (int64_t i = 0; i < in; ++i) s += x.at(std::vector<int64_t>{b, i}) * kernel.at(std::vector<int64_t>{i, j});
      out[size_t(b * n + j)] = s;
    }
  return out;
}

struct Case {
  Generator gen{7};
  Tensor x = uniform({B, I}, -1, 1, gen, DType::f64);
  Tensor h = uniform({B, H}, -1, 1, gen, DType::f64);
  Tensor c = uniform({B, H}, -1, 1, gen, DType::f64);
  Tensor u(const Shape& s) { return uniform(s, -0.8, 0.8, gen, DType::f64); }
};

void check_equal(const Tensor& ours, const std::vector<double>& keras) {
  std::vector<double> v = ours.to_vector();
  REQUIRE(v.size() == keras.size());
  for (size_t i = 0; i < v.size(); ++i) CHECK(v[i] == Approx(keras[i]).epsilon(1e-12).margin(1e-14));
}

}  // namespace

TEST_CASE("Keras LSTM weights (gates i, f, c, o in columns) step like Keras in seqgrad's LSTMCell", "[io]") {
  Case k;
  KerasWeights w{k.u({I, 4 * H}), k.u({H, 4 * H}), k.u({4 * H})};
  // Keras: z = x.kernel + h.recurrent_kernel + bias; i, f, c~, o = split(z, 4)
  std::vector<double> zx = affine(k.x, w.kernel, w.bias.to_vector()), zh = affine(k.h, w.recurrent_kernel, {});
  std::vector<double> h_new, c_new;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < H; ++j) {
      auto z = [&](int gate) { size_t p = size_t(b * 4 * H + gate * H + j); return zx[p] + zh[p]; };
      double i = sigmoid(z(0)), f = sigmoid(z(1)), g = std::tanh(z(2)), o = sigmoid(z(3));
      double cn = f * k.c.at(std::vector<int64_t>{b, j}) + i * g;
      c_new.push_back(cn);
      h_new.push_back(o * std::tanh(cn));
    }

  TorchRNNWeights t = keras_to_torch(KerasCell::lstm, w);
  CHECK(t.weight_ih.shape() == Shape{4 * H, I});
  CHECK(t.weight_hh.shape() == Shape{4 * H, H});
  CHECK(t.bias_hh.to_vector() == std::vector<double>(4 * H, 0.0));
  LSTMCell cell({.input_size = I, .hidden_size = H, .dtype = DType::f64});
  REQUIRE(load(cell, t.named(-1)).ok());
  LSTMState s = cell.forward(k.x, {k.h, k.c});
  check_equal(s.h, h_new);
  check_equal(s.c, c_new);

  // The sequence layer takes the same arrays under its _l<k> names.
  LSTM lstm({.input_size = I, .hidden_size = H, .dtype = DType::f64});
  REQUIRE(load(lstm, t.named(0)).ok());
  auto out = lstm.forward(k.x.reshape({B, 1, I}), {k.h.reshape({1, B, H}), k.c.reshape({1, B, H})});
  check_equal(out.h_n, h_new);
}

TEST_CASE("Keras GRU (reset_after, gates z, r, h) steps like Keras in seqgrad's GRUCell", "[io]") {
  Case k;
  KerasWeights w{k.u({I, 3 * H}), k.u({H, 3 * H}), k.u({2, 3 * H})};
  std::vector<double> b = w.bias.to_vector();
  std::vector<double> b_in(b.begin(), b.begin() + 3 * H), b_rec(b.begin() + 3 * H, b.end());
  // Keras reset_after=True: matrix_x = x.kernel + b_in; matrix_inner = h.recurrent_kernel + b_rec
  //   z = sigmoid(x_z + r_z); r = sigmoid(x_r + r_r); hh = tanh(x_h + r * r_h); h' = z * h + (1 - z) * hh
  std::vector<double> mx = affine(k.x, w.kernel, b_in), mh = affine(k.h, w.recurrent_kernel, b_rec);
  std::vector<double> h_new;
  for (int64_t bb = 0; bb < B; ++bb)
    for (int64_t j = 0; j < H; ++j) {
      auto at = [&](const std::vector<double>& m, int gate) { return m[size_t(bb * 3 * H + gate * H + j)]; };
      double z = sigmoid(at(mx, 0) + at(mh, 0)), r = sigmoid(at(mx, 1) + at(mh, 1));
      double hh = std::tanh(at(mx, 2) + r * at(mh, 2));
      h_new.push_back(z * k.h.at(std::vector<int64_t>{bb, j}) + (1 - z) * hh);
    }

  TorchRNNWeights t = keras_to_torch(KerasCell::gru, w);
  GRUCell cell({.input_size = I, .hidden_size = H, .dtype = DType::f64});
  REQUIRE(load(cell, t.named(-1)).ok());
  check_equal(cell.forward(k.x, k.h), h_new);
  // Row block 0 of weight_ih is Keras's r (column block 1), block 1 is z (column block 0).
  CHECK(t.weight_ih.at(std::vector<int64_t>{0, 2}) == w.kernel.at(std::vector<int64_t>{2, H}));
  CHECK(t.weight_ih.at(std::vector<int64_t>{H, 1}) == w.kernel.at(std::vector<int64_t>{1, 0}));

  SECTION("reset_after=False cannot be represented and says why") {
    CHECK_THROWS_WITH(keras_to_torch(KerasCell::gru, {w.kernel, w.recurrent_kernel, k.u({3 * H})}),
                      Contains("reset_after=False") && Contains("cannot represent"));
  }
  SECTION("use_bias=False") {
    TorchRNNWeights nb = keras_to_torch(KerasCell::gru, {w.kernel, w.recurrent_kernel, Tensor()});
    CHECK_FALSE(nb.bias_ih.defined());
    CHECK(nb.named(0).size() == 2);
    GRU gru({.input_size = I, .hidden_size = H, .bias = false, .dtype = DType::f64});
    CHECK(load(gru, nb.named(0)).ok());
  }
}

TEST_CASE("Keras SimpleRNN, shape checks and reading Keras-named arrays from a file", "[io]") {
  Case k;
  KerasWeights w{k.u({I, H}), k.u({H, H}), k.u({H})};
  std::vector<double> zx = affine(k.x, w.kernel, w.bias.to_vector()), zh = affine(k.h, w.recurrent_kernel, {});
  std::vector<double> h_new;
  for (size_t i = 0; i < zx.size(); ++i) h_new.push_back(std::tanh(zx[i] + zh[i]));
  RNNCell cell({.input_size = I, .hidden_size = H, .dtype = DType::f64});
  REQUIRE(load(cell, keras_to_torch(KerasCell::simple_rnn, w).named(-1)).ok());
  check_equal(cell.forward(k.x, k.h), h_new);

  CHECK_THROWS_WITH(keras_to_torch(KerasCell::lstm, w), Contains("LSTM") && Contains("recurrent_kernel is (2, 2), expected (H, 4*H)"));
  CHECK_THROWS_WITH(keras_to_torch(KerasCell::simple_rnn, {k.u({I, 3}), w.recurrent_kernel, w.bias}), Contains("kernel is (3, 3)"));
  CHECK_THROWS_WITH(keras_to_torch(KerasCell::simple_rnn, {w.kernel, w.recurrent_kernel, k.u({3})}), Contains("bias is (3,)"));

  // Keras 2 names end in ":0"; bidirectional layers are two calls.
  TensorFile f;
  f.tensors = {{"bidirectional/forward_lstm/lstm_cell/kernel:0", k.u({I, 4 * H})},
               {"bidirectional/forward_lstm/lstm_cell/recurrent_kernel:0", k.u({H, 4 * H})},
               {"bidirectional/forward_lstm/lstm_cell/bias:0", k.u({4 * H})},
               {"bidirectional/backward_lstm/lstm_cell/kernel", k.u({I, 4 * H})},
               {"bidirectional/backward_lstm/lstm_cell/recurrent_kernel", k.u({H, 4 * H})}};
  NamedTensors all = keras_to_torch(KerasCell::lstm, keras_weights(f, "bidirectional/forward_lstm/lstm_cell/")).named(0);
  KerasWeights bw = keras_weights(f, "bidirectional/backward_lstm/lstm_cell/");
  CHECK_FALSE(bw.bias.defined());
  bw.bias = zeros({4 * H}, DType::f64);
  for (auto& e : keras_to_torch(KerasCell::lstm, bw).named(0, true)) all.push_back(e);
  LSTM bi({.input_size = I, .hidden_size = H, .bidirectional = true, .dtype = DType::f64});
  CHECK(load(bi, all).ok());
  CHECK(bi.parameter("weight_ih_l0_reverse").to_vector() == bw.kernel.t().to_vector());
  CHECK_THROWS_WITH(keras_weights(f, "lstm/"), Contains("no tensor named 'lstm/kernel'"));
}
