// Training on sequences: masked losses for variable-length batches, truncated BPTT with a carried
// (detached) state, and a small model that actually learns.
#include <catch2/catch.hpp>

#include "autograd/seqgrad.h"
#include "layers/layers.h"

using namespace seqgrad;

TEST_CASE("sequence_mask in both layouts", "[layers][masking]") {
  std::vector<int64_t> lengths{3, 0, 1};
  CHECK(sequence_mask(lengths, 4).to_vector() == std::vector<double>{1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0});
  Tensor tm = sequence_mask(lengths, 4, DType::f64, false);
  CHECK(tm.shape() == Shape{4, 3});
  CHECK(allclose(tm, transpose(sequence_mask(lengths, 4, DType::f64), 0, 1), 0, 0));
  CHECK_THROWS_WITH(sequence_mask(lengths, 2), Catch::Contains("lengths[0] = 3 is out of range [0, 2]"));
}

TEST_CASE("masked losses ignore padded steps in value and gradient", "[layers][masking]") {
  Generator gen(1);
  const int64_t B = 3, T = 4, C = 5;
  std::vector<int64_t> lengths{4, 1, 2};
  Tensor v = uniform({B, T, 2}, -1, 1, gen, DType::f64).requires_grad_();
  Tensor m = masked_mean(v, lengths);
  double expect = 0;
  auto vals = v.to_vector();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < lengths[b]; ++t) expect += vals[(b * T + t) * 2] + vals[(b * T + t) * 2 + 1];
  CHECK(m.item() == Approx(expect / (7 * 2)).epsilon(1e-14));
  m.backward();
  auto g = v.grad().to_vector();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) CHECK(g[(b * T + t) * 2] == (t < lengths[b] ? Approx(1.0 / 14) : Approx(0.0)));

  // mse over the real steps only: padding in prediction or target changes nothing.
  Tensor pred = uniform({B, T, 1}, -1, 1, gen, DType::f64), target = uniform({B, T, 1}, -1, 1, gen, DType::f64);
  double before = masked_mse_loss(pred, target, lengths).item();
  pred.data<double>()[1 * T + 3] = 50.0;  // sequence 1, step 3: padding
  CHECK(masked_mse_loss(pred, target, lengths).item() == before);
  // Time-major layout.
  CHECK(masked_mse_loss(transpose(pred, 0, 1), transpose(target, 0, 1), lengths, false).item() ==
        Approx(before).epsilon(1e-14));

  // Cross entropy over real steps == plain cross_entropy over just those rows.
  Tensor logits = uniform({B, T, C}, -2, 2, gen, DType::f64);
  std::vector<int64_t> targets(B * T, -1);  // padded targets may hold anything
  std::vector<Tensor> rows;
  std::vector<int64_t> real_targets;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < lengths[b]; ++t) {
      targets[b * T + t] = (b + 2 * t) % C;
      real_targets.push_back(targets[b * T + t]);
      rows.push_back(reshape(select(select(logits, 0, b), 0, t), {1, C}));
    }
  double ce = cross_entropy(concat(rows, 0), real_targets).item();
  CHECK(masked_cross_entropy(logits, targets, lengths).item() == Approx(ce).epsilon(1e-13));
  GradcheckResult r =
      gradcheck([&](const std::vector<Tensor>& in) { return masked_cross_entropy(in[0], targets, lengths); },
                {logits.requires_grad_()});
  INFO(r.summary());
  CHECK(r.ok);

  CHECK_THROWS_WITH(masked_mean(v, std::vector<int64_t>{1, 2}),
                    Catch::Contains("lengths has 2 entries but input (3, 4, 2) has 3 sequences"));
  CHECK_THROWS_WITH(masked_mean(v, std::vector<int64_t>{0, 0, 0}), Catch::Contains("every length is 0"));
  targets[0] = C;
  CHECK_THROWS_WITH(masked_cross_entropy(logits, targets, lengths),
                    Catch::Contains("target 5 at position 0 is out of range [0, 5)"));
}

TEST_CASE("truncated BPTT: chunks with a carried, detached state", "[layers][tbptt]") {
  LSTM lstm({.input_size = 2, .hidden_size = 3, .dtype = DType::f64, .seed = 1});
  Generator gen(2);
  const int64_t T = 12, K = 4;  // 3 chunks of 4 steps
  Tensor x = uniform({2, T, 2}, -1, 1, gen, DType::f64);

  // Carrying the state reproduces the full-length forward pass exactly.
  {
    NoGradGuard no_grad;
    LSTMOutput full = lstm.forward(x);
    LSTMState state;
    std::vector<Tensor> outs;
    for (int64_t t0 = 0; t0 < T; t0 += K) {
      LSTMOutput r = lstm.forward(slice(x, 1, t0, t0 + K), state);
      state = r.state();
      outs.push_back(r.output);
    }
    CHECK(allclose(concat(outs, 1), full.output, 1e-13, 1e-15));
    CHECK(allclose(state.h, full.h_n, 1e-13, 1e-15));
    CHECK(allclose(state.c, full.c_n, 1e-13, 1e-15));
  }

  // Training: each backward stops at its chunk's boundary.
  LSTMState state;
  Tensor prev_x, prev_grad;
  for (int64_t t0 = 0; t0 < T; t0 += K) {
    Tensor xk = slice(x, 1, t0, t0 + K).requires_grad_();
    LSTMState carried = detach_state(state);
    if (carried.h.defined()) {
      carried.h.requires_grad_();  // only to observe the gradient arriving at the boundary
      carried.c.requires_grad_();
    }
    LSTMOutput r = lstm.forward(xk, carried);
    CHECK_NOTHROW(mean(r.output).backward());
    CHECK(xk.grad().defined());
    if (carried.h.defined()) {
      CHECK(carried.h.grad().defined());
      CHECK(carried.c.grad().defined());
    }
    if (prev_x.defined()) CHECK(allclose(prev_x.grad(), prev_grad, 0, 0));  // the previous chunk is untouched
    prev_x = xk;
    prev_grad = xk.grad().clone();
    state = r.state();
    lstm.zero_grad();
  }

  // Forgetting to detach: the carried state belongs to a tape backward() already freed.
  LSTMOutput first = lstm.forward(slice(x, 1, 0, K));
  mean(first.output).backward();
  CHECK_THROWS_WITH(lstm.forward(slice(x, 1, K, 2 * K), first.state()),
                    Catch::Contains("computed on a tape already freed by backward(); detach() it"));
  GRU gru({.input_size = 2, .hidden_size = 3, .dtype = DType::f64});
  RNNOutput g1 = gru.forward(slice(x, 1, 0, K));
  mean(g1.output).backward();
  CHECK_THROWS_WITH(gru.forward(slice(x, 1, K, 2 * K), g1.h_n), Catch::Contains("detach() it"));
  CHECK_NOTHROW(gru.forward(slice(x, 1, K, 2 * K), detach_state(g1.h_n)));
}

namespace {
// A custom model as a user would write it: registered submodules, a forward of its own.
struct Regressor : Module {
  std::shared_ptr<LSTM> lstm =
      register_module("lstm", std::make_shared<LSTM>(LSTMOptions{.input_size = 1, .hidden_size = 8, .seed = 3}));
  std::shared_ptr<Linear> head =
      register_module("head", std::make_shared<Linear>(LinearOptions{.in_features = 8, .out_features = 1, .seed = 4}));
  Tensor forward(const Tensor& x, std::span<const int64_t> lengths) {
    return head->forward(lstm->forward(x, {}, lengths).output);
  }
};
}  // namespace

TEST_CASE("a small LSTM model learns a running mean on a variable-length batch", "[layers][training]") {
  Generator gen(5);
  const int64_t B = 16, T = 8;
  Tensor x = uniform({B, T, 1}, -1, 1, gen);
  Tensor y = Tensor::empty({B, T, 1});
  for (int64_t b = 0; b < B; ++b) {
    double s = 0;
    for (int64_t t = 0; t < T; ++t) {
      s += x.data<float>()[b * T + t];
      y.data<float>()[b * T + t] = float(s / double(t + 1));
    }
  }
  std::vector<int64_t> lengths(B);
  for (int64_t b = 0; b < B; ++b) lengths[b] = 3 + b % 6;

  Regressor model;
  auto loss_now = [&] { return masked_mse_loss(model.forward(x, lengths), y, lengths); };
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    Tensor loss = loss_now();
    if (step == 0) first = loss.item();
    last = loss.item();
    loss.backward();
    NoGradGuard no_grad;
    for (Tensor& p : model.parameters()) p.copy_(sub(p, mul(p.grad(), 0.5)));  // plain SGD
    model.zero_grad();
  }
  INFO("loss " << first << " -> " << last);
  CHECK(last < 0.2 * first);
}

TEST_CASE("a sequence forward above the activation memory limit fails before allocating", "[layers][memory]") {
  LSTM lstm({.input_size = 8, .hidden_size = 64, .num_layers = 2});
  Tensor x = zeros({4, 1000, 8});
  // Kept per step and sequence: 2 layers x (4H projection + h + c) = 2 x 384 floats: 4 x 1000 x 768 x 4 B = 11.7 MiB.
  set_activation_memory_limit(1 << 20);
  struct Reset {
    ~Reset() { set_activation_memory_limit(0); }
  } reset;
  {
    Profiler prof;  // counts every op: none may run
    CHECK_THROWS_MATCHES(lstm.forward(x), std::length_error,
                         Catch::Matchers::Message(
                             "LSTM: the activations kept for backward would take about 11.7 MiB (2 layer(s) x 1000 "
                             "steps x batch 4 x 384 values per step, float32) for input (4, 1000, 8), above the limit "
                             "of 1.0 MiB (set_activation_memory_limit; default: physical memory); shorten the sequence "
                             "(truncated BPTT with detach_state), reduce the batch, or run without grad (NoGradGuard)"));
    CHECK(prof.num_events() == 0);
  }
  CHECK(Tape::current().size() == 0);
  {  // nothing is kept without grad, and shorter chunks fit
    NoGradGuard no_grad;
    CHECK(lstm.forward(x).output.shape() == Shape{4, 1000, 64});
  }
  CHECK_NOTHROW(lstm.forward(zeros({4, 50, 8})));
  Tape::current().clear();
  set_activation_memory_limit(0);
  CHECK(activation_memory_limit() > (int64_t(1) << 28));  // physical memory
  CHECK_THROWS_WITH(set_activation_memory_limit(-1), Catch::Contains("negative"));
}
