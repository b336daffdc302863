// Learning-rate schedulers: the lr after construction and after each of 10 step() calls equals the
// closed form; ReduceLROnPlateau follows a hand-traced metric sequence; state round-trips;
// bad configurations throw.
#include <catch2/catch.hpp>
#include <cmath>
#include <numbers>

#include "autograd/seqgrad.h"
#include "optim/optim.h"

using namespace seqgrad;
using namespace seqgrad::optim;

namespace {

std::vector<Tensor> one_param() { return {zeros({4}, DType::f64).requires_grad_()}; }

// lr right after construction (epoch 0), then after each of `n` steps.
template <class Sched> std::vector<double> lr_sequence(Sched& s, int n) {
  std::vector<double> out{s.optimizer().lr()};
  for (int i = 0; i < n; ++i) {
    s.step();
    out.push_back(s.optimizer().lr());
  }
  return out;
}

void check_sequence(const std::vector<double>& got, const std::vector<double>& expected) {
  REQUIRE(got.size() == expected.size());
  for (size_t e = 0; e < got.size(); ++e) {
    INFO("epoch " << e);
    CHECK(got[e] == Approx(expected[e]).epsilon(1e-15).margin(1e-18));
  }
}

}  // namespace

TEST_CASE("StepLR follows base * gamma^floor(epoch / step_size)", "[optim][sched]") {
  SGD opt(one_param(), {.lr = 0.1});
  StepLR s(opt, {.step_size = 3, .gamma = 0.5});
  std::vector<double> expected;
  for (int e = 0; e <= 10; ++e) expected.push_back(0.1 * std::pow(0.5, e / 3));
  check_sequence(lr_sequence(s, 10), expected);
  CHECK(expected[3] == Approx(0.05));
  CHECK(expected[9] == Approx(0.0125));
  CHECK(s.last_epoch() == 10);
}

TEST_CASE("ExponentialLR follows base * gamma^epoch", "[optim][sched]") {
  Adam opt(one_param(), {.lr = 0.01});
  ExponentialLR s(opt, {.gamma = 0.9});
  std::vector<double> expected;
  for (int e = 0; e <= 10; ++e) expected.push_back(0.01 * std::pow(0.9, e));
  check_sequence(lr_sequence(s, 10), expected);
}

TEST_CASE("CosineAnnealingLR follows eta_min + (base - eta_min)(1 + cos(pi e / T_max)) / 2", "[optim][sched]") {
  SGD opt(one_param(), {.lr = 0.1});
  CosineAnnealingLR s(opt, {.T_max = 10, .eta_min = 0.001});
  std::vector<double> expected;
  for (int e = 0; e <= 10; ++e)
    expected.push_back(0.001 + (0.1 - 0.001) * (1 + std::cos(std::numbers::pi * e / 10)) / 2);
  auto got = lr_sequence(s, 10);
  check_sequence(got, expected);
  CHECK(got[5] == Approx((0.1 + 0.001) / 2));
  CHECK(got[10] == Approx(0.001));
}

TEST_CASE("LinearLR warms up linearly from start_factor to end_factor, then holds", "[optim][sched]") {
  SGD opt(one_param(), {.lr = 0.2});
  LinearLR s(opt, {.start_factor = 0.25, .end_factor = 1.0, .total_iters = 4});
  std::vector<double> expected{0.05, 0.0875, 0.125, 0.1625, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2};
  check_sequence(lr_sequence(s, 10), expected);
}

TEST_CASE("SequentialLR runs a warmup then a cosine from its own epoch 0", "[optim][sched]") {
  AdamW opt(one_param(), {.lr = 0.1});
  LinearLR warmup(opt, {.start_factor = 0.1, .total_iters = 3});
  CosineAnnealingLR cosine(opt, {.T_max = 7});
  CHECK(cosine.base_lr() == 0.1);  // not the warmup's scaled lr: both scale initial_lr
  SequentialLR s(opt, {&warmup, &cosine}, {3});
  std::vector<double> expected;
  for (int e = 0; e <= 10; ++e)
    expected.push_back(e < 3 ? 0.1 * (0.1 + 0.9 * e / 3.0) : 0.1 * (1 + std::cos(std::numbers::pi * (e - 3) / 7)) / 2);
  check_sequence(lr_sequence(s, 10), expected);
}

TEST_CASE("the optimizer steps with the scheduled learning rate", "[optim][sched]") {
  Tensor p = tensor({1.0}, DType::f64).requires_grad_();
  SGD opt({p}, {.lr = 1.0});
  StepLR s(opt, {.step_size = 1, .gamma = 0.5});
  double expected = 1.0;
  for (int e = 0; e < 4; ++e) {
    p.set_grad(tensor({1.0}, DType::f64));
    opt.step();
    expected -= std::pow(0.5, e);  // p -= lr * g with lr = 0.5^e
    s.step();
  }
  CHECK(p.item() == expected);
}

TEST_CASE("ReduceLROnPlateau follows a hand-traced metric sequence", "[optim][sched]") {
  SGD opt(one_param(), {.lr = 1.0});
  ReduceLROnPlateau s(opt, {.factor = 0.5, .patience = 2, .threshold = 0.1, .cooldown = 1});
  // best=10; 9 is not < 10*(1-0.1) -> bad 1, 2, 3 > patience -> lr/2, cooldown 1 eats epoch 5's bad
  // epoch; 8 is better; then bad 1, 2, 3 -> lr/2 again; cooldown; bad 1.
  std::vector<double> metrics{10, 9, 9.5, 9.2, 9.1, 8, 8, 8, 8, 8, 8};
  std::vector<double> expected{1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25};
  std::vector<int64_t> bad{0, 1, 2, 0, 0, 0, 1, 2, 0, 0, 1};
  for (size_t e = 0; e < metrics.size(); ++e) {
    s.step(metrics[e]);
    INFO("epoch " << e + 1);
    CHECK(opt.lr() == expected[e]);
    CHECK(s.num_bad_epochs() == bad[e]);
  }
  CHECK(s.best() == 8);
  CHECK(s.last_epoch() == 11);

  SECTION("min_lr bounds the reduction; max mode with an absolute threshold") {
    SGD opt2(one_param(), {.lr = 1.0});
    ReduceLROnPlateau r(opt2, {.mode = ReduceLROnPlateauOptions::Mode::max,
                               .factor = 0.1,
                               .patience = 0,
                               .threshold = 0.5,
                               .threshold_mode = ReduceLROnPlateauOptions::ThresholdMode::abs,
                               .min_lr = 0.05});
    r.step(1.0);  // better than -inf
    CHECK(opt2.lr() == 1.0);
    r.step(1.4);  // not > 1.0 + 0.5: bad 1 > 0 -> 0.1
    CHECK(opt2.lr() == Approx(0.1));
    r.step(1.6);  // better
    CHECK(opt2.lr() == Approx(0.1));
    r.step(std::nan(""));  // NaN never improves -> max(0.01, 0.05)
    CHECK(opt2.lr() == Approx(0.05));
    r.step(0.0);  // 0.05 - 0.05 is not > eps: unchanged
    CHECK(opt2.lr() == Approx(0.05));
  }
}

TEST_CASE("scheduler state round-trips through state() / load_state()", "[optim][sched][checkpoint]") {
  SGD a(one_param(), {.lr = 0.1});
  CosineAnnealingLR sa(a, {.T_max = 10});
  for (int i = 0; i < 4; ++i) sa.step();
  SchedulerState st = sa.state();

  SGD b(one_param(), {.lr = 0.1});
  CosineAnnealingLR sb(b, {.T_max = 10});
  sb.load_state(st);
  CHECK(sb.last_epoch() == 4);
  CHECK(b.lr() == a.lr());
  sa.step();
  sb.step();
  CHECK(b.lr() == a.lr());
  CHECK_THROWS_WITH(sb.load_state({{"last_epoch", 2}}), "CosineAnnealingLR::load_state: missing entry 'base_lr'");
  CHECK_THROWS_WITH(sb.load_state({{"last_epoch", 2.5}, {"base_lr", 0.1}}), Catch::Contains("not a count"));
  CHECK_THROWS_WITH(sb.load_state({{"epoch", 2}}), Catch::Contains("unknown entry 'epoch'"));
  CHECK(sb.last_epoch() == 5);

  SGD c(one_param(), {.lr = 1.0});
  ReduceLROnPlateau pc(c, {.patience = 1});
  pc.step(3.0);
  pc.step(4.0);
  SGD d(one_param(), {.lr = 1.0});
  ReduceLROnPlateau pd(d, {.patience = 1});
  pd.load_state(pc.state());
  CHECK(pd.best() == 3.0);
  CHECK(pd.num_bad_epochs() == 1);
  pc.step(5.0);
  pd.step(5.0);
  CHECK(c.lr() == d.lr());
  CHECK(d.lr() == Approx(0.1));
}

TEST_CASE("bad scheduler configurations throw with a clear message", "[optim][sched][config]") {
  using Catch::Contains;
  SGD opt(one_param(), {.lr = 0.1});
  CHECK_THROWS_WITH(StepLR(opt, {.step_size = 0}), "StepLR: invalid step_size 0 (must be >= 1)");
  CHECK_THROWS_WITH(StepLR(opt, {.step_size = 2, .gamma = -1}), Contains("StepLR: invalid gamma -1"));
  CHECK_THROWS_WITH(ExponentialLR(opt, {.gamma = 0}), Contains("ExponentialLR: invalid gamma 0"));
  CHECK_THROWS_WITH(CosineAnnealingLR(opt, {.T_max = 0}), Contains("CosineAnnealingLR: invalid T_max 0"));
  CHECK_THROWS_WITH(CosineAnnealingLR(opt, {.T_max = 5, .eta_min = -1}), Contains("invalid eta_min -1"));
  CHECK_THROWS_WITH(LinearLR(opt, {.start_factor = 0}),
                    Contains("LinearLR: invalid start_factor 0 (must be in (0, 1])"));
  CHECK_THROWS_WITH(LinearLR(opt, {.end_factor = 1.5}), Contains("invalid end_factor 1.5"));
  CHECK_THROWS_WITH(LinearLR(opt, {.total_iters = 0}), Contains("invalid total_iters 0"));
  CHECK_THROWS_WITH(ReduceLROnPlateau(opt, {.factor = 1.0}), "ReduceLROnPlateau: invalid factor 1 (must be in [0, 1))");
  CHECK_THROWS_WITH(ReduceLROnPlateau(opt, {.patience = -1}), Contains("invalid patience -1"));
  CHECK_THROWS_WITH(ReduceLROnPlateau(opt, {.min_lr = -1}), Contains("invalid min_lr -1"));
  StepLR a(opt, {.step_size = 2});
  CHECK_THROWS_WITH(SequentialLR(opt, {&a}, {3}), "SequentialLR: 1 schedulers need 0 milestones, got 1");
  SGD other(one_param(), {.lr = 0.1});
  StepLR b(other, {.step_size = 2});
  CHECK_THROWS_WITH(SequentialLR(opt, {&a, &b}, {3}), "SequentialLR: scheduler 1 drives a different optimizer");
  StepLR c(opt, {.step_size = 2});
  CHECK_THROWS_WITH(SequentialLR(opt, {&a, &c}, {0}), Contains("milestones must be positive and increasing"));
  // Throwing constructors leave the optimizer's lr alone.
  CHECK(opt.lr() == 0.1);
}
