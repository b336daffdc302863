// Tensors, the tape and its error messages, determinism across thread counts.
#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "autograd/kernels/arch.h"
#include "autograd/seqgrad.h"

using namespace seqgrad;
using Catch::Contains;

TEST_CASE("construction and views", "[tensor]") {
  Tensor z = zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.dtype() == DType::f32);
  CHECK(z.to_vector() == std::vector<double>(6, 0.0));
  CHECK(ones({4}, DType::f64).to_vector() == std::vector<double>(4, 1.0));
  CHECK(full({2}, 2.5).to_vector() == std::vector<double>{2.5, 2.5});
  CHECK(arange(4).to_vector() == std::vector<double>{0, 1, 2, 3});
  Tensor t = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.at(std::vector<int64_t>{1, 2}) == 6);

  SECTION("copies share storage, clone does not") {
    Tensor alias = t;
    alias.data<float>()[0] = 10;
    CHECK(t.to_vector()[0] == 10);
    Tensor c = t.clone();
    c.data<float>()[0] = 0;
    CHECK(t.to_vector()[0] == 10);
  }
  SECTION("reshape is a view with an inferred extent") {
    Tensor r = t.reshape({3, -1});
    CHECK(r.shape() == Shape{3, 2});
    CHECK(r.raw() == t.raw());
  }
  SECTION("select and slice along an axis") {
    Tensor x = arange(24).reshape({2, 3, 4});
    CHECK(x.select(1, 2).to_vector() == std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23});
    CHECK(x.slice(2, 1, 3).shape() == Shape{2, 3, 2});
    CHECK(x.slice(2, 1, 3).to_vector()[0] == 1);
  }
  SECTION("select and slice of a leading axis are views, as reshape is; other axes copy") {
    Tensor x = arange(24).reshape({2, 3, 4});
    Tensor step = x.select(0, 1), rows = x.slice(0, 1, 2), inner = x.select(1, 0);
    CHECK(step.raw() == static_cast<char*>(x.raw()) + 12 * sizeof(float));
    CHECK(rows.raw() == step.raw());
    CHECK(inner.raw() != x.raw());
    step.fill_(-1);
    CHECK(x.to_vector()[12] == -1);
    CHECK(inner.to_vector()[0] == 0);
    CHECK(arange(3).select(0, 2).item() == 2);  // down to a scalar
  }
  SECTION("concat and stack") {
    Tensor a = arange(4).reshape({2, 2});
    Tensor b = full({2, 1}, 9);
    CHECK(concat(std::vector{a, b}, 1).to_vector() == std::vector<double>{0, 1, 9, 2, 3, 9});
    CHECK(stack(std::vector{a, a}, 0).shape() == Shape{2, 2, 2});
  }
  SECTION("transpose") {
    Tensor x = arange(6).reshape({2, 3});
    CHECK(x.t().to_vector() == std::vector<double>{0, 3, 1, 4, 2, 5});
  }
  SECTION("dtype conversion") {
    Tensor d = t.to(DType::f64);
    CHECK(d.dtype() == DType::f64);
    CHECK(d.to_vector() == t.to_vector());
  }
}

TEST_CASE("row views: what the sequence layers keep their step states in", "[tensor]") {
  // A (2, 3, 2) buffer seen as step t = 1 of a batch-first sequence: rows 2 apart by 3*2.
  Tensor buf = arange(12).reshape({2, 3, 2});
  Tensor step = detail::row_view(buf, 2, {2, 2}, 6);
  CHECK_FALSE(step.contiguous());
  CHECK(step.row_stride() == 6);
  CHECK(step.clone().to_vector() == std::vector<double>{2, 3, 8, 9});
  CHECK_THROWS_WITH(step.data<float>(), Contains("strided row view (2, 2)") && Contains("clone()"));
  CHECK_THROWS_WITH(add(step, step), Contains("strided row view"));
  CHECK_THROWS_WITH(step.reshape({4}), Contains("keeping its last extent"));
  CHECK(step.reshape({1, 2, 2}).clone().to_vector() == std::vector<double>{2, 3, 8, 9});
  CHECK_THROWS_WITH(detail::row_view(buf, 8, {2, 2}, 6), Contains("run outside"));
  // The three steps side by side along the last axis are the buffer itself: concat is a view.
  std::vector<Tensor> steps;
  for (int64_t t = 0; t < 3; ++t) steps.push_back(detail::row_view(buf, 2 * t, {2, 2}, 6));
  Tensor joined = concat(steps, 1);
  CHECK(joined.raw() == buf.raw());
  CHECK(joined.to_vector() == buf.to_vector());
  // Not side by side (reordered): a copy, with the same values a copy of compact tensors gives.
  Tensor swapped = concat(std::vector<Tensor>{steps[1], steps[0]}, 1);
  CHECK(swapped.raw() != buf.raw());
  CHECK(swapped.to_vector() == concat(std::vector<Tensor>{steps[1].clone(), steps[0].clone()}, 1).to_vector());
  const std::vector<Tensor> compact{steps[0].clone(), steps[1].clone(), steps[2].clone()};
  CHECK(stack(steps, 0).to_vector() == stack(compact, 0).to_vector());
}

TEST_CASE("broadcasting follows NumPy rules", "[tensor]") {
  Tensor a = arange(6).reshape({2, 3});
  Tensor row = tensor({10, 20, 30});
  Tensor col = tensor({100, 200}, {2, 1});
  CHECK((a + row).to_vector() == std::vector<double>{10, 21, 32, 13, 24, 35});
  CHECK((a + col).to_vector() == std::vector<double>{100, 101, 102, 203, 204, 205});
  CHECK((col * row).shape() == Shape{2, 3});
  CHECK((a - 1.0).to_vector()[0] == -1);
  CHECK((2.0 / (a + 1.0)).to_vector()[1] == 1);
}

TEST_CASE("seeded generator is reproducible", "[tensor]") {
  Generator g1(42), g2(42), g3(43);
  Tensor a = uniform({100}, -1, 1, g1), b = uniform({100}, -1, 1, g2), c = uniform({100}, -1, 1, g3);
  CHECK(a.to_vector() == b.to_vector());
  CHECK(a.to_vector() != c.to_vector());
  for (double v : a.to_vector()) CHECK((v >= -1 && v < 1));
  Tensor n = normal({4000}, 0, 1, g1, DType::f64);
  CHECK(n.mean().item() == Approx(0).margin(0.06));
  CHECK(pow(n, 2.0).mean().item() == Approx(1).margin(0.08));
  auto s = g1.state();
  double next = g1.uniform();
  g1.set_state(s);
  CHECK(g1.uniform() == next);
}

TEST_CASE("fmt prints tensors like PyTorch", "[tensor]") {
  CHECK(fmt::format("{}", Shape{2, 3}) == "(2, 3)");
  CHECK(fmt::format("{}", Shape{4}) == "(4,)");
  Tensor t = tensor({1, 2, 3, 4}, {2, 2}, DType::f64);
  CHECK(fmt::format("{}", t) ==
        "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], shape=(2, 2), dtype=float64)");
  CHECK_THAT(fmt::format("{}", arange(5000)), Contains("...") && Contains("4999.0000"));
  t.requires_grad_();
  CHECK_THAT(fmt::format("{}", t), Contains("requires_grad=True"));
}

TEST_CASE("gradients accumulate across backward calls until zeroed", "[tape]") {
  Tensor w = tensor({1, 2, 3}, DType::f64).requires_grad_();
  (w * 2.0).sum().backward();
  (w * 3.0).sum().backward();
  CHECK(w.grad().to_vector() == std::vector<double>{5, 5, 5});
  w.zero_grad();
  CHECK_FALSE(w.grad().defined());
}

TEST_CASE("backward seeds non-scalars explicitly", "[tape]") {
  Tensor x = tensor({1, 2}, DType::f64).requires_grad_();
  Tensor y = x * x;
  y.backward(tensor({1, 10}, DType::f64));
  CHECK(x.grad().to_vector() == std::vector<double>{2, 40});
  Tensor y2 = x * x;
  REQUIRE_THROWS_WITH(y2.backward(), Contains("shape (2,)") && Contains("seed"));
}

TEST_CASE("the tape is freed by backward and reports misuse clearly", "[tape]") {
  Tensor w = tensor({1, 2}, DType::f64).requires_grad_();
  Tensor loss = (w * w).sum();
  loss.backward();
  REQUIRE_THROWS_WITH(loss.backward(), Contains("already freed") && Contains("retain_graph"));

  Tensor plain = tensor({1, 2});
  REQUIRE_THROWS_WITH(plain.sum().backward(), Contains("does not require grad"));

  // A tensor from a freed tape cannot silently join a new graph (truncated BPTT needs detach()).
  Tensor h = tanh(w);
  (h.sum()).backward();
  REQUIRE_THROWS_WITH(h * w, Contains("mul") && Contains("detach()"));
  CHECK_NOTHROW(h.detach() * w);
}

TEST_CASE("retain_graph allows a second backward", "[tape]") {
  Tensor w = tensor({3}, DType::f64).requires_grad_();
  Tensor loss = (w * w).sum();
  loss.backward(true);
  loss.backward();
  CHECK(w.grad().to_vector() == std::vector<double>{12});
}

TEST_CASE("no-grad guard and detach record nothing", "[tape]") {
  Tensor w = ones({3}).requires_grad_();
  Tape::current().clear();
  {
    NoGradGuard guard;
    Tensor y = w * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(Tape::current().size() == 0);
  }
  Tensor d = w.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.raw() == w.raw());
  Tensor y = w * 2.0;
  CHECK(Tape::current().size() == 1);
  CHECK(Tape::current().nodes()[0].op == Op::MulScalar);
  Tape::current().clear();
}

TEST_CASE("bad input throws invalid_argument naming the op and shapes", "[tensor][errors]") {
  Tensor a = zeros({5, 7}), b = zeros({3, 7}), c = zeros({4, 2}, DType::f64);
  CHECK_THROWS_AS(a + b, std::invalid_argument);
  CHECK_THROWS_WITH(a + b, Contains("add") && Contains("(5, 7)") && Contains("(3, 7)"));
  CHECK_THROWS_WITH(matmul(a, b), Contains("matmul") && Contains("(5, 7)") && Contains("(3, 7)"));
  CHECK_THROWS_WITH(matmul(zeros({4, 2}), c), Contains("dtype mismatch") && Contains("float64"));
  CHECK_THROWS_WITH(sum(a, 2), Contains("sum") && Contains("axis 2") && Contains("rank 2"));
  CHECK_THROWS_WITH(a.select(1, 7), Contains("select") && Contains("index 7"));
  CHECK_THROWS_WITH(a.slice(0, 3, 9), Contains("slice") && Contains("[3, 9)"));
  CHECK_THROWS_WITH(a.reshape({6, -1}), Contains("reshape") && Contains("(5, 7)"));
  CHECK_THROWS_WITH(linear(a, zeros({2, 6})), Contains("linear") && Contains("(2, 6)"));
  CHECK_THROWS_WITH(concat(std::vector{a, zeros({5, 2, 1})}, 0), Contains("concat") && Contains("(5, 2, 1)"));
  CHECK_THROWS_WITH(cross_entropy(a, std::vector<int64_t>{0, 1, 2, 3, 7}), Contains("index 7"));
  CHECK_THROWS_WITH(a.data<double>(), Contains("float32"));
  CHECK_THROWS_WITH(tensor({1, 2, 3}, {2, 2}), Contains("3 values") && Contains("(2, 2)"));
  CHECK_THROWS_WITH(a.item(), Contains("35 elements"));
  CHECK_THROWS_WITH(Tensor().shape(), Contains("undefined"));
}

TEST_CASE("results are bitwise identical for 1 and 2 threads", "[tensor][determinism]") {
  Generator g(5);
  Tensor a = uniform({300, 257}, -1, 1, g).requires_grad_();
  Tensor b = uniform({257, 513}, -1, 1, g).requires_grad_();
  Tensor big = uniform({1 << 19}, -1, 1, g);
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    a.zero_grad();
    b.zero_grad();
    Tensor y = tanh(matmul(a, b));
    Tensor loss = sum(y * y) + sum(sigmoid(big)) + linear(y, b.detach()).mean();
    loss.backward();
    std::vector<double> out{loss.item()};
    for (const Tensor& t : {y, a.grad(), b.grad()}) {
      auto v = t.to_vector();
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  };
  int before = omp_get_max_threads();
  auto one = run(1), two = run(2);
  omp_set_num_threads(before);
  CHECK(one == two);
}

TEST_CASE("the kernels run on the best instruction set available", "[tensor]") {
  std::string arch = kernels::best_arch_name();
  CHECK((arch == "avx512bw" || arch == "fma3+avx2" || arch == "sse2"));
}

TEST_CASE("pow follows C at zero: 1 for p = 0, inf for p < 0, and so does its gradient", "[tensor]") {
  // 19 elements: the SIMD body and the scalar tail both see zeros.
  std::vector<double> xs{0, -0.0, 2, 0.5, 0, 3, -0.0, 1, 0, 4, 0, 5, 0, 6, -0.0, 7, 0, 8, 0};
  for (DType dt : {DType::f32, DType::f64})
    for (double p : {-1.0, -0.5, -2.0, 0.0, 2.0, 0.5}) {
      Tensor x = from_vector(xs, {int64_t(xs.size())}, dt).requires_grad_();
      Tensor y = pow(x, p);
      sum(y).backward();
      for (size_t i = 0; i < xs.size(); ++i) {
        if (p == -0.5 && std::signbit(xs[i])) continue;  // -0 to a fractional power: NaN or inf by libm
        INFO("x " << xs[i] << " p " << p);
        CHECK(y.to_vector()[i] == Approx(std::pow(xs[i], p)));
        if (p != 0) CHECK(x.grad().to_vector()[i] == Approx(p * std::pow(xs[i], p - 1)));
      }
    }
}

// float32 tanh and sigmoid are seqgrad's own (autograd/kernels/elementwise_impl.hpp): within 3 ulp
// of double precision on a spread of every float's bit pattern, through each batch width (16, 8
// and 4 lanes: a call of 8 or 4 values takes the narrower instruction set) and keeping the
// special values.
TEST_CASE("float32 tanh and sigmoid are within 3 ulp and keep the special values", "[tensor]") {
  std::vector<float> xs;
  for (uint64_t bits = 0; bits < (uint64_t(1) << 32); bits += 4099) {
    float f;
    const auto b = uint32_t(bits);
    std::memcpy(&f, &b, sizeof f);
    if (!std::isnan(f)) xs.push_back(f);
  }
  auto ulps = [](float got, double want) {
    const double w = std::fabs(want), ulp = w < 1.1754943508222875e-38 ? std::ldexp(1.0, -149)
                                                                          : std::ldexp(1.0, std::ilogb(float(w)) - 23);
    return std::fabs(double(got) - want) / ulp;
  };
  for (int64_t width : {int64_t(0), int64_t(8), int64_t(4)}) {
    double worst_tanh = 0, worst_sigmoid = 0;
    const int64_t n = width ? int64_t(xs.size()) / 64 / width * width : int64_t(xs.size());
    for (int64_t i0 = 0; i0 < n; i0 += width ? width : n) {
      const int64_t m = width ? width : n;
      const Tensor x = from_vector(std::span<const float>(xs).subspan(size_t(i0 * (width ? 64 : 1)), size_t(m)), {m});
      const std::vector<double> t = tanh(x).to_vector(), s = sigmoid(x).to_vector(), xv = x.to_vector();
      for (int64_t i = 0; i < m; ++i) {
        worst_tanh = std::max(worst_tanh, ulps(float(t[i]), std::tanh(xv[i])));
        if (xv[i] > -88.3) worst_sigmoid = std::max(worst_sigmoid, ulps(float(s[i]), 1 / (1 + std::exp(-xv[i]))));
      }
    }
    INFO("batch width " << (width ? width : 16) << ", " << n << " values");
    CHECK(worst_tanh <= 3);
    CHECK(worst_sigmoid <= 3);
  }
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> special{0.f, -0.f, 1e-40f, -1e-40f, 9.1f, -9.1f, 100.f, -100.f, inf, -inf, nan, 1.f, -1.f, 20.f, -20.f, 0.5f};
  const Tensor x = from_vector(std::span<const float>(special), {16});
  const Tensor t = tanh(x), s = sigmoid(x);
  const float* tp = t.data<float>();
  const float* sp = s.data<float>();
  CHECK((tp[0] == 0 && !std::signbit(tp[0]) && tp[1] == 0 && std::signbit(tp[1])));
  CHECK((tp[2] == special[2] && tp[3] == special[3]));  // subnormals: tanh(x) = x
  CHECK((tp[4] == 1 && tp[5] == -1 && tp[6] == 1 && tp[7] == -1 && tp[8] == 1 && tp[9] == -1));
  CHECK((std::isnan(tp[10]) && std::isnan(sp[10])));
  CHECK((sp[0] == 0.5f && sp[6] == 1 && sp[8] == 1));
  CHECK((sp[7] >= 0 && sp[7] < 5e-39f && sp[9] >= 0 && sp[9] < 5e-39f));  // saturates near 0 (4.2e-39)
}
