// The opt-in bfloat16 matmul mode (autograd/matmul_precision.h): products against a float64 loop
// over the bf16-rounded operands on every transpose, beta, bias and ragged-tile case; prepacked
// weights giving the unpacked bits; determinism across thread counts; a recurrent layer close to
// its float32 self; and the mode's switch. Skipped (with a warning) on CPUs without AVX512_BF16.
#include <catch2/catch.hpp>
#include <omp.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "autograd/kernels/gemm.h"
#include "autograd/seqgrad.h"
#include "layers/layers.h"

using namespace seqgrad;

namespace {

// Switches bf16 on for a scope (f32 again after it, also when a check throws).
struct Bf16Scope {
  Bf16Scope() { set_matmul_precision(MatmulPrecision::bf16); }
  ~Bf16Scope() { set_matmul_precision(MatmulPrecision::f32); }
};

// Rounds to the nearest bfloat16, ties to even (what the kernels' conversion does; inputs here are normal).
double bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  return double(std::bit_cast<float>(((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) << 16));
}

std::vector<float> random_values(size_t n, std::mt19937& gen) {
  std::uniform_real_distribution<float> dist(-1, 1);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

}  // namespace

TEST_CASE("bf16 matmul: products of the rounded operands, summed in float32", "[bf16]") {
  if (!bf16_matmul_supported()) {
    CHECK_THROWS_WITH(set_matmul_precision(MatmulPrecision::bf16), Catch::Contains("AVX512_BF16"));
    WARN("no AVX512_BF16 on this CPU: bf16 mode not tested");
    return;
  }
  CHECK(matmul_precision() == MatmulPrecision::f32);  // off by default
  std::mt19937 gen(11);
  struct Case { int64_t M, N, K; };
  for (Case s : {Case{70, 100, 77}, Case{15, 33, 400}, Case{64, 1024, 256}, Case{1, 300, 50}, Case{200, 65, 129}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float beta : {0.f, 1.f})
          for (bool with_bias : {false, true}) {
            INFO("M=" << s.M << " N=" << s.N << " K=" << s.K << " ta=" << ta << " tb=" << tb << " beta=" << beta
                      << " bias=" << with_bias);
            const int64_t lda = (ta ? s.M : s.K) + 3, ldb = (tb ? s.K : s.N) + 5, ldc = s.N + 2;
            std::vector<float> A = random_values(size_t((ta ? s.K : s.M) * lda), gen);
            std::vector<float> B = random_values(size_t((tb ? s.N : s.K) * ldb), gen);
            std::vector<float> bias = random_values(size_t(s.N), gen), C = random_values(size_t(s.M * ldc), gen);
            std::vector<float> C0 = C;
            {
              Bf16Scope on;
              kernels::gemm<float>(ta, tb, s.M, s.N, s.K, A.data(), lda, B.data(), ldb, beta, C.data(), ldc,
                                   with_bias ? bias.data() : nullptr);
            }
            const bool gemv = s.M == 1 && !(ta && tb);  // matrix-vector and small products stay float32
            const bool blocked = s.K * s.N > 4096 && !gemv;
            for (int64_t i = 0; i < s.M; ++i)
              for (int64_t j = 0; j < s.N; ++j) {
                double ref = (beta != 0 ? C0[size_t(i * ldc + j)] : 0.0) + (with_bias ? bias[size_t(j)] : 0.0);
                double mag = std::abs(ref);
                for (int64_t k = 0; k < s.K; ++k) {
                  const float a = ta ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)];
                  const float b = tb ? B[size_t(j * ldb + k)] : B[size_t(k * ldb + j)];
                  const double p = blocked ? bf16(a) * bf16(b) : double(a) * double(b);
                  ref += p;
                  mag += std::abs(p);
                }
                // float32 sums of K exact products: K + 2 roundings of at most 2^-24 of the magnitude.
                REQUIRE(std::abs(C[size_t(i * ldc + j)] - ref) <= double(s.K + 2) * 0x1p-24 * mag + 1e-30);
              }
            for (int64_t i = 0; i < s.M; ++i)  // the row padding is untouched
              for (int64_t j = s.N; j < ldc; ++j) REQUIRE(C[size_t(i * ldc + j)] == C0[size_t(i * ldc + j)]);
          }
}

TEST_CASE("bf16 matmul: a prepacked B gives gemm's bits, at any thread count; the switch", "[bf16]") {
  if (!bf16_matmul_supported()) return;
  std::mt19937 gen(12);
  const int64_t M = 64, N = 1000, K = 300;
  std::vector<float> A = random_values(size_t(M * K), gen), W = random_values(size_t(N * K), gen);
  std::vector<float> f32(size_t(M * N)), plain(size_t(M * N)), packed(size_t(M * N)), two(size_t(M * N));
  kernels::gemm<float>(false, true, M, N, K, A.data(), K, W.data(), K, 0.f, f32.data(), N);
  {
    Bf16Scope on;
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    kernels::gemm<float>(false, true, M, N, K, A.data(), K, W.data(), K, 0.f, plain.data(), N);
    std::vector<float> buffer(size_t(kernels::gemm_packed_size<float>(K, N)) + 16);
    float* aligned = buffer.data() + (64 - reinterpret_cast<uintptr_t>(buffer.data()) % 64) % 64 / sizeof(float);
    const kernels::PackedB<float> pb{.trans = true, .K = K, .N = N, .src = W.data(), .ldb = K, .data = aligned};
    CHECK(pb.bf16);
    kernels::gemm_pack_b(pb);
    kernels::gemm_packed<float>(M, A.data(), K, pb, 0.f, packed.data(), N);
    omp_set_num_threads(2);
    kernels::gemm<float>(false, true, M, N, K, A.data(), K, W.data(), K, 0.f, two.data(), N);
    omp_set_num_threads(saved);
  }
  CHECK(std::memcmp(plain.data(), packed.data(), plain.size() * 4) == 0);
  CHECK(std::memcmp(plain.data(), two.data(), plain.size() * 4) == 0);
  CHECK(std::memcmp(plain.data(), f32.data(), plain.size() * 4) != 0);  // it did run in bf16
  std::vector<float> again(size_t(M * N));
  kernels::gemm<float>(false, true, M, N, K, A.data(), K, W.data(), K, 0.f, again.data(), N);
  CHECK(std::memcmp(again.data(), f32.data(), f32.size() * 4) == 0);  // f32 again, bit for bit
}

TEST_CASE("bf16 matmul: an LSTM's forward and gradients stay close to float32", "[bf16]") {
  if (!bf16_matmul_supported()) return;
  LSTM lstm({.input_size = 64, .hidden_size = 128, .seed = 3});
  Generator gen(4);
  Tensor x = normal({16, 20, 64}, 0, 1, gen);
  auto run = [&] {
    lstm.zero_grad();
    Tensor y = lstm.forward(x).output;
    sum(mul(y, y)).backward();
    return std::make_pair(y.clone(), lstm.parameter("weight_hh_l0").grad().clone());
  };
  auto [y32, g32] = run();
  std::pair<Tensor, Tensor> r16;
  {
    Bf16Scope on;
    r16 = run();
  }
  auto rel = [](const Tensor& a, const Tensor& b) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
      num += std::pow(double(a.data<float>()[i]) - b.data<float>()[i], 2);
      den += std::pow(double(b.data<float>()[i]), 2);
    }
    return std::sqrt(num / den);
  };
  CHECK(rel(r16.first, y32) < 1e-2);
  CHECK(rel(r16.second, g32) < 2e-2);
  CHECK(rel(r16.first, y32) > 0);  // the products did run in bf16
}
