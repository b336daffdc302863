// The int8 GEMM (quant/qgemm.h): every ISA path this CPU has gives bitwise the same output as the
// plain C++ one (exact int32 sums, one epilogue), at shapes with row, column and K tails, with and
// without bias and accumulation; quantization round trips; bad stored values are rejected.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "autograd/seqgrad.h"
#include "autograd/kernels/qgemm.h"

using namespace seqgrad;
using namespace seqgrad::quant;

namespace {
struct IsaGuard {  // restores the ISA in use
  QIsa saved = qisa();
  ~IsaGuard() { set_qisa(saved); }
};
}  // namespace

TEST_CASE("qgemm: VNNI, AVX2 and plain C++ give the same bits", "[quant][qgemm]") {
  IsaGuard guard;
  Generator gen(5);
  struct Shape3 { int64_t M, N, K; };
  for (Shape3 s : {Shape3{1, 1, 1}, Shape3{3, 17, 5}, Shape3{5, 70, 33}, Shape3{64, 300, 64}, Shape3{7, 1024, 256}})
    for (bool acc : {false, true})
      for (bool with_bias : {false, true}) {
        INFO("M=" << s.M << " N=" << s.N << " K=" << s.K << " acc=" << acc << " bias=" << with_bias);
        Tensor a = uniform({s.M, s.K}, -2, 2, gen), w = uniform({s.N, s.K}, -0.5, 0.5, gen), b = uniform({s.N}, -1, 1, gen);
        Tensor c0 = uniform({s.M, s.N}, -1, 1, gen);
        QMatrix q = QMatrix::quantize(w.data<float>(), s.N, s.K);
        std::vector<std::vector<float>> outs;
        for (QIsa isa : {QIsa::scalar, QIsa::avx2, QIsa::avx512_vnni}) {
          if (isa != QIsa::scalar && int(isa) > int(best_qisa())) continue;
          set_qisa(isa);
          std::vector<float> c(c0.span<float>().begin(), c0.span<float>().end());
          qlinear(s.M, a.data<float>(), s.K, q, acc, c.data(), s.N, with_bias ? b.data<float>() : nullptr);
          outs.push_back(c);
        }
        for (size_t i = 1; i < outs.size(); ++i) CHECK(std::memcmp(outs[0].data(), outs[i].data(), outs[0].size() * 4) == 0);
      }
  WARN("int8 paths compared on this CPU: scalar up to " << qisa_name(best_qisa()));
}

TEST_CASE("qgemm: error against the float product within the bound the scales give", "[quant][qgemm]") {
  // x w - (q_x s_x)(q_w s_w) = x e_w + w e_x - e_x e_w with |e_x| <= s_x / 2, |e_w| <= s_w / 2.
  Generator gen(6);
  const int64_t M = 9, N = 40, K = 50;
  Tensor a = normal({M, K}, 0, 1, gen), w = uniform({N, K}, -0.3, 0.3, gen);
  QMatrix q = QMatrix::quantize(w.data<float>(), N, K);
  std::vector<float> c(size_t(M * N));
  qlinear(M, a.data<float>(), K, q, false, c.data(), N, nullptr);
  const float *x = a.data<float>(), *wf = w.data<float>();
  int64_t tight = 0;
  for (int64_t m = 0; m < M; ++m) {
    double amax = 0;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::abs(double(x[m * K + k])));
    const double sx = amax / 127;
    for (int64_t n = 0; n < N; ++n) {
      double exact = 0, bound = 0;
      const double sw = q.scale[size_t(n)];
      for (int64_t k = 0; k < K; ++k) {
        exact += double(x[m * K + k]) * wf[n * K + k];
        bound += std::abs(x[m * K + k]) * sw / 2 + std::abs(wf[n * K + k]) * sx / 2 + sx * sw / 4;
      }
      const double err = std::abs(c[size_t(m * N + n)] - exact);
      CHECK(err <= bound * (1 + 1e-5) + 1e-6);
      tight += err > bound / 20;
    }
  }
  CHECK(tight > 0);  // the bound is not vacuous: some errors come within 20x of it
}

TEST_CASE("QMatrix: round trip and rejected values", "[quant][qgemm][errors]") {
  Tensor w = tensor({0.5, -0.25, 0, 0, 0, 0}, {2, 3});
  QMatrix q = QMatrix::quantize(w.data<float>(), 2, 3);
  CHECK(q.q == std::vector<int8_t>{127, -64, 0, 0, 0, 0});
  CHECK(q.scale[1] == 1.f);  // an all-zero row
  CHECK(q.dequantize()[0] == 0.5f);
  CHECK_THROWS_WITH(QMatrix::from_int8({1, 2}, {1.f}, 1, 3), Catch::Contains("(1, 3)"));
  CHECK_THROWS_WITH(QMatrix::from_int8({1, -128, 3}, {1.f}, 1, 3), Catch::Contains("(0, 1)") && Catch::Contains("[-127, 127]"));
  CHECK_THROWS_WITH(QMatrix::from_int8({1, 2, 3}, {0.f}, 1, 3), Catch::Contains("scale"));
}
