// Gradient clipping: norms computed by hand, PyTorch's scaling rule, its inf/NaN behaviour, the
// error_if_nonfinite option, and a norm with the same bits for 1 and 2 threads.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "autograd/seqgrad.h"
#include "optim/optim.h"

using namespace seqgrad;
using namespace seqgrad::optim;

namespace {

using Vec = std::vector<double>;

// Two float64 parameters and one float32 with gradients (3, 4), (12,) and (0,); one without.
std::vector<Tensor> params_with_grads(Vec g0 = {3, 4}, Vec g1 = {12}) {
  std::vector<Tensor> ps{zeros({2}, DType::f64).requires_grad_(), zeros({1}, DType::f64).requires_grad_(),
                         zeros({1}).requires_grad_(), zeros({3}).requires_grad_()};
  ps[0].set_grad(from_vector(g0, {2}, DType::f64));
  ps[1].set_grad(from_vector(g1, {1}, DType::f64));
  ps[2].set_grad(zeros({1}));
  return ps;
}

}  // namespace

TEST_CASE("grad_norm is the p-norm of all gradient values together", "[optim][clip]") {
  auto ps = params_with_grads();
  CHECK(grad_norm(ps) == 13.0);  // sqrt(9 + 16 + 144)
  CHECK(grad_norm(ps, 1) == 19.0);
  CHECK(grad_norm(ps, kInf) == 12.0);
  CHECK(grad_norm(ps, 3) == Approx(std::cbrt(27.0 + 64 + 1728)).epsilon(1e-14));
  CHECK(grad_norm(params_with_grads({-3, 4}, {-12}), kInf) == 12.0);
  std::vector<Tensor> none{zeros({3}).requires_grad_()};
  CHECK(grad_norm(none) == 0.0);
  CHECK(clip_grad_norm(none, 1.0) == 0.0);
}

TEST_CASE("clip_grad_norm scales by max_norm / (norm + 1e-6) and returns the norm before clipping", "[optim][clip]") {
  auto ps = params_with_grads();
  double norm = clip_grad_norm(ps, 6.5);
  CHECK(norm == 13.0);
  double coef = 6.5 / (13.0 + 1e-6);
  CHECK(ps[0].grad().to_vector() == Vec{3 * coef, 4 * coef});
  CHECK(ps[1].grad().to_vector() == Vec{12 * coef});
  CHECK(grad_norm(ps) == Approx(13.0 * coef).epsilon(1e-14));
  CHECK_FALSE(ps[3].grad().defined());

  SECTION("a norm within max_norm leaves the gradients' bits alone") {
    auto qs = params_with_grads({0.1, 0.2}, {0.3});
    CHECK(clip_grad_norm(qs, 1.0) == Approx(std::sqrt(0.14)));
    CHECK(qs[0].grad().to_vector() == Vec{0.1, 0.2});
    CHECK(qs[1].grad().to_vector() == Vec{0.3});
  }
  SECTION("inf norm") {
    auto qs = params_with_grads();
    CHECK(clip_grad_norm(qs, 6.0, kInf) == 12.0);
    CHECK(qs[1].grad().to_vector()[0] == Approx(6.0).epsilon(1e-6));
  }
}

TEST_CASE("clip_grad_norm handles inf and NaN gradients the way PyTorch does", "[optim][clip]") {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  SECTION("inf: coef is 0, so finite gradients become 0 and the inf becomes NaN") {
    auto ps = params_with_grads({3, inf}, {12});
    CHECK(std::isinf(clip_grad_norm(ps, 1.0)));
    CHECK(ps[0].grad().to_vector()[0] == 0.0);
    CHECK(std::isnan(ps[0].grad().to_vector()[1]));
    CHECK(ps[1].grad().to_vector()[0] == 0.0);
  }
  SECTION("NaN: every gradient becomes NaN") {
    auto ps = params_with_grads({3, nan}, {12});
    CHECK(std::isnan(clip_grad_norm(ps, 1.0)));
    CHECK(std::isnan(ps[1].grad().to_vector()[0]));
    CHECK(std::isnan(grad_norm(params_with_grads({3, nan}, {12}), kInf)));
  }
  SECTION("error_if_nonfinite throws and leaves the gradients untouched") {
    auto ps = params_with_grads({3, inf}, {12});
    CHECK_THROWS_AS(clip_grad_norm(ps, 1.0, 2.0, true), std::runtime_error);
    CHECK_THROWS_WITH(clip_grad_norm(ps, 1.0, 2.0, true),
                      Catch::Contains("total norm of order 2 of the gradients is non-finite (inf)") &&
                          Catch::Contains("error_if_nonfinite = false"));
    CHECK(ps[0].grad().to_vector() == Vec{3, inf});
    CHECK(ps[1].grad().to_vector() == Vec{12});
    auto qs = params_with_grads({3, nan}, {12});
    CHECK_THROWS_WITH(clip_grad_norm(qs, 1.0, kInf, true), Catch::Contains("order inf") && Catch::Contains("(nan)"));
  }
}

TEST_CASE("the gradient norm has the same bits for any thread count", "[optim][clip]") {
  // 300001 values: many chunks, run in parallel; float32 so the summation order shows in the bits.
  Generator gen(3);
  Tensor p = zeros({300001}).requires_grad_();
  p.set_grad(uniform({300001}, -1, 1, gen));
  int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  double one = grad_norm({p}), one_inf = grad_norm({p}, kInf), one_l1 = grad_norm({p}, 1);
  omp_set_num_threads(2);
  double two = grad_norm({p}), two_inf = grad_norm({p}, kInf), two_l1 = grad_norm({p}, 1);
  omp_set_num_threads(threads);
  CHECK(one == two);
  CHECK(one_inf == two_inf);
  CHECK(one_l1 == two_l1);
  double ref = 0;
  for (double v : p.grad().to_vector()) ref += v * v;
  CHECK(one == Approx(std::sqrt(ref)).epsilon(1e-5));
}

TEST_CASE("clip_grad_value clamps every gradient value and keeps NaN", "[optim][clip]") {
  auto ps = params_with_grads({-3, 0.5}, {std::nan("")});
  clip_grad_value(ps, 1.0);
  CHECK(ps[0].grad().to_vector() == Vec{-1.0, 0.5});
  CHECK(std::isnan(ps[1].grad().to_vector()[0]));
  Tensor big = zeros({37}).requires_grad_();  // SIMD body and tail
  big.set_grad(arange(37) - 18.0);
  clip_grad_value({big}, 2.5);
  auto v = big.grad().to_vector();
  for (int i = 0; i < 37; ++i) CHECK(v[i] == std::clamp(double(i) - 18.0, -2.5, 2.5));
}

TEST_CASE("bad clipping arguments throw with a clear message", "[optim][clip][config]") {
  auto ps = params_with_grads();
  CHECK_THROWS_WITH(clip_grad_norm(ps, -1.0), "clip_grad_norm: max_norm -1 must be >= 0");
  CHECK_THROWS_WITH(clip_grad_norm(ps, 1.0, 0.0), "grad_norm: norm_type 0 must be > 0 (or inf)");
  CHECK_THROWS_WITH(clip_grad_value(ps, -0.5), "clip_grad_value: clip_value -0.5 must be >= 0");
  CHECK(ps[0].grad().to_vector() == Vec{3, 4});
}
