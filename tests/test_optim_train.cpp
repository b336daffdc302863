// Convergence: every optimizer trains (1) a least-squares linear model and (2) a tiny Elman RNN
// on "output the sign of the input one step ago" below a loss threshold within a fixed number of
// steps. The RNN is built by hand from ops (no layer): BPTT is the tape's ordinary backward.
// Everything is seeded; each step budget is about 1.5-2x what the optimizer needed when written.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <memory>

#include "autograd/seqgrad.h"
#include "optim/optim.h"

using namespace seqgrad;
using namespace seqgrad::optim;

namespace {

struct TrainCase {
  std::string name;
  std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)> make;
  int steps;
  double threshold;
};

template <class Opt, class Options> std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)> maker(Options o) {
  return [o](std::vector<Tensor> ps) { return std::make_unique<Opt>(std::move(ps), o); };
}

std::vector<TrainCase> least_squares_cases() {
  return {
      {"SGD", maker<SGD>(SGDOptions{.lr = 0.1}), 250, 1e-4},
      {"SGD nesterov", maker<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true}), 120, 1e-4},
      {"Adam", maker<Adam>(AdamOptions{.lr = 0.05}), 200, 1e-4},
      {"Adam amsgrad", maker<Adam>(AdamOptions{.lr = 0.05, .amsgrad = true}), 200, 1e-4},
      {"AdamW", maker<AdamW>(AdamWOptions{.lr = 0.05, .weight_decay = 1e-4}), 200, 1e-4},
      {"RMSprop", maker<RMSprop>(RMSpropOptions{.lr = 0.02}), 200, 1e-4},
      {"RMSprop centered momentum", maker<RMSprop>(RMSpropOptions{.lr = 0.005, .momentum = 0.5, .centered = true}), 300,
       1e-4},
      {"Adagrad", maker<Adagrad>(AdagradOptions{.lr = 0.5}), 60, 1e-4},
  };
}

std::vector<TrainCase> rnn_cases() {
  return {
      {"SGD momentum", maker<SGD>(SGDOptions{.lr = 0.5, .momentum = 0.9}), 40, 5e-3},
      {"Adam", maker<Adam>(AdamOptions{.lr = 0.05}), 80, 5e-3},
      {"AdamW", maker<AdamW>(AdamWOptions{.lr = 0.05}), 80, 5e-3},
      {"RMSprop", maker<RMSprop>(RMSpropOptions{.lr = 0.01}), 200, 5e-3},
      {"Adagrad", maker<Adagrad>(AdagradOptions{.lr = 0.2}), 120, 5e-3},
  };
}

}  // namespace

TEST_CASE("each optimizer solves a small least-squares problem", "[optim][train]") {
  auto c = GENERATE(from_range(least_squares_cases()));
  INFO(c.name);
  Generator gen(11);
  // x: (32, 5) -> y = x w* + b*: (32, 1)
  Tensor x = uniform({32, 5}, -1, 1, gen, DType::f64);
  Tensor w_true = tensor({0.5, -1.0, 2.0, 0.0, 1.5}, {1, 5}, DType::f64);
  Tensor y = linear(x, w_true, tensor({0.3}, DType::f64));
  Tensor w = zeros({1, 5}, DType::f64).requires_grad_();
  Tensor b = zeros({1}, DType::f64).requires_grad_();
  auto opt = c.make({w, b});
  double first = 0, loss = 0;
  for (int step = 0; step < c.steps; ++step) {
    opt->zero_grad();
    Tensor l = mse_loss(linear(x, w, b), y);
    loss = l.item();
    if (step == 0) first = loss;
    l.backward();
    opt->step();
  }
  INFO("loss " << first << " -> " << loss << " after " << c.steps << " steps");
  CHECK(loss < c.threshold);
}

TEST_CASE("each optimizer trains a tiny RNN to recall the previous input's sign", "[optim][train]") {
  auto c = GENERATE(from_range(rnn_cases()));
  INFO(c.name);
  // B sequences of T steps; x in {-1, +1}: (B, T, 1); target at t >= 1 is [x_{t-1} > 0].
  const int64_t B = 16, T = 6, H = 6;
  Generator gen(5);
  std::vector<double> xs(B * T), ys(B * T);
  for (int64_t i = 0; i < B * T; ++i) xs[i] = gen.below(2) ? 1.0 : -1.0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 1; t < T; ++t) ys[b * T + t] = xs[b * T + t - 1] > 0 ? 1.0 : 0.0;
  Tensor x = from_vector(xs, {B, T, 1}), y = from_vector(ys, {B, T, 1});
  // h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh); logit_t = h_t W_out^T + b_out.
  double k = 1 / std::sqrt(double(H));
  Tensor w_ih = uniform({H, 1}, -k, k, gen).requires_grad_(), w_hh = uniform({H, H}, -k, k, gen).requires_grad_();
  Tensor b_ih = uniform({H}, -k, k, gen).requires_grad_(), b_hh = uniform({H}, -k, k, gen).requires_grad_();
  Tensor w_out = uniform({1, H}, -k, k, gen).requires_grad_(), b_out = uniform({1}, -k, k, gen).requires_grad_();
  std::vector<Tensor> params{w_ih, w_hh, b_ih, b_hh, w_out, b_out};
  auto opt = c.make(params);

  double first = 0, loss = 0;
  for (int step = 0; step < c.steps; ++step) {
    opt->zero_grad();
    Tensor h = zeros({B, H});
    Tensor l;
    for (int64_t t = 0; t < T; ++t) {
      h = tanh(linear(select(x, 1, t), w_ih, b_ih) + linear(h, w_hh, b_hh));
      if (t == 0) continue;  // nothing to recall yet
      Tensor lt = binary_cross_entropy_with_logits(linear(h, w_out, b_out), select(y, 1, t));
      l = l.defined() ? l + lt : lt;
    }
    l = l / double(T - 1);
    loss = l.item();
    if (step == 0) first = loss;
    l.backward();
    clip_grad_norm(params, 5.0);
    opt->step();
  }
  INFO("loss " << first << " -> " << loss << " after " << c.steps << " steps");
  CHECK(loss < c.threshold);
}
