// The custom cell of examples/peephole_lstm.h, written from public ops: its values against the
// equations evaluated by hand in double, the fused LSTM when the peepholes are zero, and a float64
// gradient check through the unrolled steps w.r.t. the input and every parameter.
#include <catch2/catch.hpp>

#include <cmath>

#include "examples/peephole_lstm.h"
#include "layers/layers.h"

using namespace seqgrad;

namespace {

// h_t of every step for x (B, T, I), straight from the equations in peephole_lstm.h.
std::vector<double> by_hand(const examples::PeepholeLSTM& m, const Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), I = x.size(2), H = m.parameter("peephole").size(1);
  auto at = [](const Tensor& t, std::initializer_list<int64_t> i) { return t.at(std::vector<int64_t>(i)); };
  const Tensor w_ih = m.parameter("weight_ih"), w_hh = m.parameter("weight_hh"), b = m.parameter("bias"),
               p = m.parameter("peephole");
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  std::vector<double> out;
  for (int64_t n = 0; n < B; ++n) {
    std::vector<double> h(size_t(H), 0), c(size_t(H), 0);
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> pre(size_t(4 * H));
      for (int64_t r = 0; r < 4 * H; ++r) {
        double s = at(b, {r});
        for (int64_t k = 0; k < I; ++k) s += at(w_ih, {r, k}) * at(x, {n, t, k});
        for (int64_t k = 0; k < H; ++k) s += at(w_hh, {r, k}) * h[size_t(k)];
        pre[size_t(r)] = s;
      }
      for (int64_t j = 0; j < H; ++j) {
        const size_t u = size_t(j);
        double i = sig(pre[u] + at(p, {0, j}) * c[u]), f = sig(pre[u + H] + at(p, {1, j}) * c[u]);
        c[u] = f * c[u] + i * std::tanh(pre[u + 2 * H]);
        h[u] = sig(pre[u + 3 * H] + at(p, {2, j}) * c[u]) * std::tanh(c[u]);
      }
      out.insert(out.end(), h.begin(), h.end());
    }
  }
  return out;
}

}  // namespace

TEST_CASE("peephole LSTM from public ops matches its equations", "[custom_cell]") {
  examples::PeepholeLSTM m(3, 4, /*seed=*/7, DType::f64);
  Generator gen(1);
  Tensor x = uniform({2, 5, 3}, -1, 1, gen, DType::f64);
  Tensor y = m.forward(x);
  REQUIRE(y.shape() == Shape{2, 5, 4});
  std::vector<double> want = by_hand(m, x);
  for (size_t k = 0; k < want.size(); ++k) REQUIRE(y.data<double>()[k] == Approx(want[k]).margin(1e-12));
}

TEST_CASE("peephole LSTM with zero peepholes is the fused LSTM", "[custom_cell]") {
  examples::PeepholeLSTM m(5, 8, /*seed=*/3);
  LSTM lstm({.input_size = 5, .hidden_size = 8});
  m.parameter("peephole").fill_(0);
  lstm.parameter("bias_hh_l0").fill_(0);
  for (auto [from, to] : {std::pair{"weight_ih", "weight_ih_l0"}, {"weight_hh", "weight_hh_l0"}, {"bias", "bias_ih_l0"}})
    std::copy_n(m.parameter(from).data<float>(), m.parameter(from).numel(), lstm.parameter(to).data<float>());
  Generator gen(2);
  Tensor x = normal({4, 6, 5}, 0, 1, gen);
  NoGradGuard no_grad;
  Tensor a = m.forward(x), b = lstm.forward(x).output;
  for (int64_t k = 0; k < a.numel(); ++k) REQUIRE(a.data<float>()[k] == Approx(b.data<float>()[k]).margin(1e-6));
}

TEST_CASE("peephole LSTM gradients through the unrolled steps (float64)", "[custom_cell][gradcheck]") {
  examples::PeepholeLSTM m(3, 4, /*seed=*/5, DType::f64);
  Generator gen(4);
  Tensor x = uniform({2, 4, 3}, -1, 1, gen, DType::f64).requires_grad_();
  std::vector<Tensor> inputs{x};
  for (const Tensor& p : m.parameters()) inputs.push_back(p);
  GradcheckResult r = gradcheck([&](const std::vector<Tensor>&) { return m.forward(x); }, inputs);
  INFO(r.summary());
  REQUIRE(r.ok);
}

TEST_CASE("linear with a PackedWeight is bitwise linear, values and gradients", "[custom_cell]") {
  Generator gen(6);
  for (Shape w_shape : {Shape{1024, 256}, Shape{3, 7}, Shape{1, 300}}) {  // packed, read in place, one output
    INFO(fmt::format("weight {}", w_shape));
    Tensor x = normal({64, w_shape[1]}, 0, 1, gen).requires_grad_(), w = normal(w_shape, 0, 0.1, gen).requires_grad_();
    Tensor b = normal({w_shape[0]}, 0, 1, gen);
    Tensor seed = normal({64, w_shape[0]}, 0, 1, gen);
    linear(x, w, b).backward(seed);
    const std::vector<double> y = linear(x, w, b).to_vector(), dx = x.grad().to_vector(), dw = w.grad().to_vector();
    x.zero_grad();
    w.zero_grad();
    Tensor yp = linear(x, PackedWeight(w), b);
    yp.backward(seed);
    CHECK(yp.to_vector() == y);
    CHECK(x.grad().to_vector() == dx);
    CHECK(w.grad().to_vector() == dw);
  }
}
