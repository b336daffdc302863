// Gradient checks for every differentiable op, from one list of cases. A coverage test runs each
// case, collects the ops it left on the tape and fails if any op of ops.def is missing, so a new
// op cannot land without a check. Shapes are odd (5, 7, 11, 13) so SIMD tails are exercised.
#include <catch2/catch.hpp>

#include <set>

#include "autograd/seqgrad.h"

using namespace seqgrad;

namespace {

struct OpCase {
  std::string name;
  GradcheckFn f;
  std::vector<Tensor> inputs;
};

// float64 leaf, uniform in [lo, hi), kept at least `gap` away from zero (relu's kink, log's pole).
Tensor input(const Shape& s, Generator& gen, double lo = -1, double hi = 1, double gap = 0) {
  Tensor t = uniform(s, lo, hi, gen, DType::f64);
  for (double& v : t.span<double>())
    if (std::abs(v) < gap) v = v < 0 ? -gap : gap;
  return t.requires_grad_();
}

std::vector<OpCase> all_op_cases() {
  Generator g(1234);
  std::vector<OpCase> c;
  auto add_case = [&](std::string name, GradcheckFn f, std::vector<Tensor> in) {
    c.push_back({std::move(name), std::move(f), std::move(in)});
  };
  using V = const std::vector<Tensor>&;
  add_case("add", [](V x) { return add(x[0], x[1]); }, {input({5, 7}, g), input({5, 7}, g)});
  add_case("add broadcast row", [](V x) { return add(x[0], x[1]); }, {input({5, 7}, g), input({7}, g)});
  add_case("add broadcast outer", [](V x) { return add(x[0], x[1]); }, {input({5, 1}, g), input({1, 7}, g)});
  add_case("add broadcast scalar", [](V x) { return add(x[0], x[1]); }, {input({11, 13}, g), input({}, g)});
  add_case("sub broadcast", [](V x) { return sub(x[0], x[1]); }, {input({3, 1, 4}, g), input({2, 4}, g)});
  add_case("mul", [](V x) { return mul(x[0], x[1]); }, {input({11, 13}, g), input({11, 13}, g)});
  add_case("mul broadcast", [](V x) { return mul(x[0], x[1]); }, {input({5, 7}, g), input({5, 1}, g)});
  add_case("div", [](V x) { return div(x[0], x[1]); }, {input({5, 7}, g), input({5, 7}, g, 0.5, 2)});
  add_case("div broadcast", [](V x) { return div(x[0], x[1]); }, {input({5, 7}, g), input({7}, g, 0.5, 2)});
  add_case("add scalar", [](V x) { return x[0] + 2.5; }, {input({5, 7}, g)});
  add_case("rsub scalar", [](V x) { return 1.0 - x[0]; }, {input({5, 7}, g)});
  add_case("mul scalar", [](V x) { return x[0] * -3.0; }, {input({5, 7}, g)});
  add_case("rdiv scalar", [](V x) { return 2.0 / x[0]; }, {input({5, 7}, g, 0.5, 2)});
  add_case("pow 2.5", [](V x) { return pow(x[0], 2.5); }, {input({5, 7}, g, 0.5, 2)});
  add_case("pow -1", [](V x) { return pow(x[0], -1.0); }, {input({13}, g, 0.5, 2)});
  add_case("exp", [](V x) { return exp(x[0]); }, {input({11, 13}, g)});
  add_case("log", [](V x) { return log(x[0]); }, {input({11, 13}, g, 0.2, 3)});
  add_case("tanh", [](V x) { return tanh(x[0]); }, {input({11, 13}, g, -3, 3)});
  add_case("sigmoid", [](V x) { return sigmoid(x[0]); }, {input({11, 13}, g, -4, 4)});
  add_case("relu", [](V x) { return relu(x[0]); }, {input({11, 13}, g, -1, 1, 0.05)});
  add_case("matmul 2d", [](V x) { return matmul(x[0], x[1]); }, {input({5, 7}, g), input({7, 11}, g)});
  add_case("matmul 3d", [](V x) { return matmul(x[0], x[1]); }, {input({3, 5, 7}, g), input({3, 7, 4}, g)});
  add_case("matmul 3d@2d", [](V x) { return matmul(x[0], x[1]); }, {input({3, 5, 7}, g), input({7, 4}, g)});
  add_case("linear", [](V x) { return linear(x[0], x[1], x[2]); }, {input({2, 5, 7}, g), input({11, 7}, g), input({11}, g)});
  add_case("linear no bias", [](V x) { return linear(x[0], x[1]); }, {input({5, 7}, g), input({3, 7}, g)});
  // W (70, 70) is big enough to be packed; W (3, 7) is read in place.
  add_case("linear, packed weight", [](V x) { return linear(x[0], PackedWeight(x[1]), x[2]); },
           {input({2, 5, 70}, g), input({70, 70}, g, -0.2, 0.2), input({70}, g)});
  add_case("linear, small packed weight", [](V x) { return linear(x[0], PackedWeight(x[1])); },
           {input({5, 7}, g), input({3, 7}, g)});
  add_case("transpose 0,2", [](V x) { return transpose(x[0], 0, 2); }, {input({3, 5, 7}, g)});
  add_case("transpose last two", [](V x) { return x[0].t(); }, {input({2, 5, 7}, g)});
  add_case("reshape", [](V x) { return mul(reshape(x[0], {7, -1}), x[1]); }, {input({5, 7}, g), input({7, 5}, g)});
  add_case("select", [](V x) { return select(x[0], 1, 2); }, {input({3, 5, 7}, g)});
  add_case("select last", [](V x) { return select(x[0], -1, -1); }, {input({3, 5, 7}, g)});
  add_case("select first (a view)", [](V x) { return mul(select(x[0], 0, 1), x[1]); },
           {input({3, 5, 7}, g), input({5, 7}, g)});
  add_case("slice", [](V x) { return slice(x[0], 1, 2, 6); }, {input({5, 7}, g)});
  add_case("slice first (a view)", [](V x) { return slice(x[0], 0, 1, 3); }, {input({4, 7}, g)});
  add_case("concat", [](V x) { return concat(x, 1); }, {input({2, 3, 5}, g), input({2, 1, 5}, g), input({2, 4, 5}, g)});
  add_case("stack", [](V x) { return stack(x, 1); }, {input({5, 7}, g), input({5, 7}, g)});
  add_case("sum", [](V x) { return sum(x[0]); }, {input({11, 13}, g)});
  add_case("sum axis keepdim", [](V x) { return sum(x[0], 1, true); }, {input({3, 5, 7}, g)});
  add_case("sum axis last", [](V x) { return sum(x[0], -1); }, {input({3, 5, 7}, g)});
  add_case("mean", [](V x) { return mean(x[0]); }, {input({5, 7}, g)});
  add_case("mean axis", [](V x) { return mean(x[0], 0); }, {input({5, 7}, g)});
  add_case("softmax last", [](V x) { return softmax(x[0], -1); }, {input({5, 7}, g, -3, 3)});
  add_case("softmax inner", [](V x) { return softmax(x[0], 1); }, {input({3, 5, 7}, g, -3, 3)});
  add_case("log_softmax", [](V x) { return log_softmax(x[0], 1); }, {input({5, 7}, g, -3, 3)});
  add_case("mse_loss", [](V x) { return mse_loss(x[0], x[1]); }, {input({5, 7}, g), input({5, 7}, g)});
  add_case("bce_with_logits", [](V x) { return bce_with_logits_elementwise(x[0], x[1]); },
           {input({5, 7}, g, -6, 6), input({5, 7}, g, 0, 1)});
  add_case("bce_with_logits mean", [](V x) { return binary_cross_entropy_with_logits(x[0], x[1]); },
           {input({13}, g, -4, 4), input({13}, g, 0, 1)});
  add_case("cross_entropy", [](V x) { return cross_entropy(x[0], std::vector<int64_t>{0, 3, 6, 2, 2}); },
           {input({5, 7}, g, -2, 2)});
  add_case("embedding", [](V x) { return embedding(x[0], std::vector<int64_t>{3, 0, 3, 4, 1, 1}, {2, 3}); },
           {input({5, 7}, g)});
  // Cells: xp, h, (c,) w_hh (, b_hh). Hidden sizes 33 and 40 make W_hh big enough (> 4096 elements)
  // for the packed GEMM path; the others read it in place.
  add_case("rnn_cell tanh, step of a batch-first sequence", [](V x) { return rnn_cell(x[0], 1, 1, x[1], x[2]); },
           {input({2, 3, 5}, g), input({2, 5}, g), input({5, 5}, g)});
  add_case("rnn_cell relu, one step", [](V x) { return rnn_cell(x[0], 1, 0, x[1], x[2], true); },
           {input({3, 5}, g, -1, 1, 0.05), input({3, 5}, g, -1, 1, 0.05), input({5, 5}, g, -0.1, 0.1)});
  add_case("rnn_cell, packed W_hh", [](V x) { return rnn_cell(x[0], 0, 1, x[1], x[2]); },
           {input({2, 3, 70}, g), input({3, 70}, g), input({70, 70}, g, -0.2, 0.2)});
  add_case("lstm_cell h and c, time-major", [](V x) {
    auto [h, c] = lstm_cell(x[0], 0, 2, x[1], x[2], x[3]);
    return add(h, mul(c, 0.5));
  }, {input({3, 2, 12}, g), input({2, 3}, g), input({2, 3}, g), input({12, 3}, g)});
  add_case("lstm_cell h only", [](V x) { return lstm_cell(x[0], 1, 0, x[1], x[2], x[3]).first; },
           {input({2, 1, 20}, g), input({2, 5}, g), input({2, 5}, g), input({20, 5}, g)});
  add_case("lstm_cell c only", [](V x) { return lstm_cell(x[0], 1, 0, x[1], x[2], x[3]).second; },
           {input({2, 20}, g), input({2, 5}, g), input({2, 5}, g), input({20, 5}, g)});
  add_case("lstm_cell, packed W_hh", [](V x) {
    auto [h, c] = lstm_cell(x[0], 1, 1, x[1], x[2], x[3]);
    return add(h, c);
  }, {input({2, 2, 132}, g), input({2, 33}, g), input({2, 33}, g), input({132, 33}, g, -0.3, 0.3)});
  add_case("gru_cell", [](V x) { return gru_cell(x[0], 1, 2, x[1], x[2], x[3]); },
           {input({2, 3, 15}, g), input({2, 5}, g), input({15, 5}, g), input({15}, g)});
  add_case("gru_cell time-major, no bias", [](V x) { return gru_cell(x[0], 0, 0, x[1], x[2]); },
           {input({2, 3, 9}, g), input({3, 3}, g), input({9, 3}, g)});
  add_case("gru_cell, packed W_hh", [](V x) { return gru_cell(x[0], 1, 0, x[1], x[2], x[3]); },
           {input({2, 1, 120}, g), input({2, 40}, g), input({120, 40}, g, -0.3, 0.3), input({120}, g)});
  // XpUse::consume overwrites xp, so these consume a fresh copy of it per evaluation; the other
  // steps' slices must come back with zero gradient.
  add_case("rnn_cell consuming xp", [](V x) { return rnn_cell(mul(x[0], 1.0), 1, 2, x[1], x[2], false, XpUse::consume); },
           {input({2, 3, 70}, g), input({2, 70}, g), input({70, 70}, g, -0.2, 0.2)});
  add_case("lstm_cell consuming xp", [](V x) {
    auto [h, c] = lstm_cell(mul(x[0], 1.0), 0, 1, x[1], x[2], x[3], XpUse::consume);
    return add(h, c);
  }, {input({3, 2, 132}, g), input({2, 33}, g), input({2, 33}, g), input({132, 33}, g, -0.3, 0.3)});
  add_case("gru_cell consuming xp", [](V x) { return gru_cell(mul(x[0], 1.0), 1, 1, x[1], x[2], x[3], XpUse::consume); },
           {input({2, 2, 15}, g), input({2, 5}, g), input({15, 5}, g), input({15}, g)});
  // A composition: fan-out of one tensor into several ops must accumulate.
  add_case("fan-out", [](V x) { return add(mul(tanh(x[0]), x[0]), sigmoid(x[0])); }, {input({5, 7}, g)});
  return c;
}

}  // namespace

TEST_CASE("gradcheck passes for every op case", "[gradcheck]") {
  auto c = GENERATE(from_range(all_op_cases()));
  INFO(c.name);
  GradcheckResult r = gradcheck(c.f, c.inputs);
  INFO(r.summary());
  CHECK(r.ok);
  CHECK(r.max_rel_error < 1e-6);
}

TEST_CASE("every op in ops.def has a gradcheck case", "[gradcheck]") {
  std::set<Op> seen;
  for (auto& c : all_op_cases()) {
    Tape::current().clear();
    c.f(c.inputs);
    for (const Node& n : Tape::current().nodes()) seen.insert(n.op);
    Tape::current().clear();
  }
  for (int i = 0; i < kNumOps; ++i) {
    if (Op(i) == Op::Int8Inference) continue;  // not differentiable: its backward throws (test_quant.cpp)
    INFO("op without a gradcheck case: " << op_name(Op(i)));
    CHECK(seen.count(Op(i)) == 1);
  }
}

TEST_CASE("no-grad path computes the same values and records nothing", "[gradcheck]") {
  auto c = GENERATE(from_range(all_op_cases()));
  INFO(c.name);
  Tape::current().clear();
  Tensor with_grad = c.f(c.inputs);
  CHECK(Tape::current().size() > 0);
  CHECK(with_grad.requires_grad());
  Tape::current().clear();
  NoGradGuard guard;
  Tensor without = c.f(c.inputs);
  CHECK(Tape::current().size() == 0);
  CHECK_FALSE(without.requires_grad());
  CHECK(with_grad.to_vector() == without.to_vector());
}

TEST_CASE("gradcheck catches a wrong gradient", "[gradcheck]") {
  // An op whose backward is deliberately wrong: x * stop_grad(x) has gradient x, not 2x.
  Generator g(7);
  Tensor x = input({5}, g);
  GradcheckResult r = gradcheck([](const std::vector<Tensor>& in) { return mul(in[0], in[0].detach()); }, {x});
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.summary(), Catch::Contains("FAILED") && Catch::Contains("input 0"));
}

TEST_CASE("tanh grad is 1 - y^2", "[gradcheck][unary]") {
  Tensor x = tensor({-1.0, 0.0, 0.5, 2.0}, DType::f64).requires_grad_();
  Tensor y = tanh(x);
  sum(y).backward();
  for (int i = 0; i < 4; ++i) {
    double t = std::tanh(x.to_vector()[i]);
    CHECK(x.grad().to_vector()[i] == Approx(1 - t * t).epsilon(1e-15));
  }
}

TEST_CASE("bce_with_logits is finite and exact for large logits", "[gradcheck][loss]") {
  Tensor x = tensor({-1000.0, -50.0, 0.0, 50.0, 1000.0}, DType::f64).requires_grad_();
  Tensor t = tensor({1.0, 0.0, 1.0, 1.0, 0.0}, DType::f64);
  Tensor l = bce_with_logits_elementwise(x, t);
  auto v = l.to_vector();
  CHECK(v[0] == Approx(1000.0));
  CHECK(v[1] == Approx(0.0).margin(1e-20));
  CHECK(v[2] == Approx(std::log(2.0)));
  CHECK(v[3] == Approx(0.0).margin(1e-20));
  CHECK(v[4] == Approx(1000.0));
  sum(l).backward();
  auto d = x.grad().to_vector();
  std::vector<double> expected{-1.0, 0.0, -0.5, 0.0, 1.0};  // sigmoid(x) - t
  for (int i = 0; i < 5; ++i) CHECK(d[i] == Approx(expected[i]).margin(1e-15));
}

// The debugging hooks see every op through its builder's shared last step (recording()), recorded
// or not: for every case, as many profiler events under NoGradGuard as nodes on the tape with grad,
// and (above) the cases cover every op of ops.def. DetectAnomaly raises nothing on finite values.
TEST_CASE("every op reaches the anomaly and profiler hooks, also under NoGradGuard", "[gradcheck][debug]") {
  auto c = GENERATE(from_range(all_op_cases()));
  INFO(c.name);
  Tape::current().clear();
  c.f(c.inputs);
  const size_t recorded = Tape::current().size();
  Tape::current().clear();
  DetectAnomaly anomaly;
  Profiler prof;
  NoGradGuard no_grad;
  c.f(c.inputs);
  CHECK(prof.num_events() == recorded);
}
