// Tests for kernels::gemm: every transpose combination, beta and bias against a float64 triple
// loop, on shapes that hit the 1-wide, ragged-tile and multi-k-slice paths; gemm_packed giving
// gemm's bits; the row sums of op(A) it takes on the way; and bitwise determinism across thread
// counts. Leading dimensions are padded so a kernel that assumes ld == width fails.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "autograd/kernels/elementwise.h"
#include "autograd/kernels/gemm.h"

using seqgrad::kernels::gemm;
using seqgrad::kernels::PackedB;

namespace {

struct Shape {
  int64_t M, N, K;
};

// op(X) (rows x cols, logical) laid out as X or X^T with row padding `pad`; returns the ld.
template <class T>
int64_t lay_out(const std::vector<double>& op, int64_t rows, int64_t cols, bool trans, int64_t pad, std::vector<T>& x) {
  const int64_t stored_rows = trans ? cols : rows, ld = (trans ? rows : cols) + pad;
  x.assign(size_t(std::max<int64_t>(stored_rows * ld, 1)), std::numeric_limits<T>::quiet_NaN());  // pads are poison
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) (trans ? x[c * ld + r] : x[r * ld + c]) = T(op[r * cols + c]);
  return ld;
}

template <class T>
void check_against_naive(Shape s, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(-1, 1);
  auto draw = [&](int64_t n) {
    std::vector<double> v(static_cast<size_t>(n));
    for (auto& x : v) x = double(T(dist(gen)));  // exactly representable in T
    return v;
  };
  const auto a = draw(s.M * s.K), b = draw(s.K * s.N), c0 = draw(s.M * s.N), bias_values = draw(s.N);
  // Reference and per-element error scale sum_k |a||b| in float64.
  std::vector<double> ref(size_t(s.M * s.N)), scale(size_t(s.M * s.N));
  for (int64_t i = 0; i < s.M; ++i)
    for (int64_t j = 0; j < s.N; ++j) {
      double sum = 0, mag = 0;
      for (int64_t k = 0; k < s.K; ++k) {
        const double p = a[i * s.K + k] * b[k * s.N + j];
        sum += p, mag += std::abs(p);
      }
      ref[i * s.N + j] = sum, scale[i * s.N + j] = mag;
    }
  const double eps = std::numeric_limits<T>::epsilon();
  for (bool trans_a : {false, true})
    for (bool trans_b : {false, true})
      for (T beta : {T(0), T(1)})
        for (bool with_bias : {false, true}) {
          CAPTURE(s.M, s.N, s.K, trans_a, trans_b, beta, with_bias, sizeof(T));
          const std::vector<T> bias(bias_values.begin(), bias_values.end());
          const T* pbias = with_bias ? bias.data() : nullptr;
          std::vector<T> A, B;
          const int64_t lda = lay_out(a, s.M, s.K, trans_a, 3, A), ldb = lay_out(b, s.K, s.N, trans_b, 5, B);
          const int64_t ldc = s.N + 2;
          std::vector<T> C(size_t(s.M * ldc), std::numeric_limits<T>::quiet_NaN());  // beta 0 must not read C
          for (int64_t i = 0; i < s.M; ++i)
            for (int64_t j = 0; j < s.N; ++j)
              if (beta != T(0)) C[i * ldc + j] = T(c0[i * s.N + j]);
          const std::vector<T> C_in = C;
          gemm<T>(trans_a, trans_b, s.M, s.N, s.K, A.data(), lda, B.data(), ldb, beta, C.data(), ldc, pbias);
          if (!trans_a) {  // the same product from op(B) packed ahead gives the same bits
            std::vector<T> packed(size_t(seqgrad::kernels::gemm_packed_size<T>(s.K, s.N)) + 64), C2 = C_in;
            T* aligned = packed.data() + (64 - reinterpret_cast<uintptr_t>(packed.data()) % 64) % 64 / sizeof(T);
            const PackedB<T> pb{.trans = trans_b, .K = s.K, .N = s.N, .src = B.data(), .ldb = ldb,
                                .data = packed.size() > 64 ? aligned : nullptr};
            seqgrad::kernels::gemm_pack_b(pb);
            seqgrad::kernels::gemm_packed<T>(s.M, A.data(), lda, pb, beta, C2.data(), ldc, pbias);
            CHECK(std::memcmp(C.data(), C2.data(), C.size() * sizeof(T)) == 0);
          }
          int64_t bad = 0;
          for (int64_t i = 0; i < s.M; ++i)
            for (int64_t j = 0; j < s.N; ++j) {
              const double added_c = beta != T(0) ? c0[i * s.N + j] : 0.0, added_b = with_bias ? bias_values[j] : 0.0;
              const double want = ref[i * s.N + j] + added_c + added_b;
              const double added = std::abs(added_c) + std::abs(added_b);
              const double tol = 2 * eps * ((s.K + 1) * scale[i * s.N + j] + std::abs(want) + 2 * added);
              if (!(std::abs(double(C[i * ldc + j]) - want) <= tol + 1e-300)) ++bad;
            }
          for (int64_t i = 0; i < s.M; ++i)  // the row padding of C is untouched
            for (int64_t j = s.N; j < ldc; ++j) bad += !std::isnan(C[i * ldc + j]);
          CHECK(bad == 0);
        }
}

template <class T>
std::vector<T> random_matrix(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<T> dist(-1, 1);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(gen);
  return v;
}

}  // namespace

TEST_CASE("gemm matches a float64 triple loop for all transposes and beta", "[gemm]") {
  // M x N x K. Tiles are 14 x 32 floats on AVX-512; k slices are 384 floats / 192 doubles.
  // Up to K*N = 4096 products take the direct small path, the rest the blocked one; both get
  // 1-wide and ragged shapes (33 = 2 batches + 1, 29 = 16 + 8 + 4 + 1).
  const Shape shapes[] = {{1, 1, 1},     {5, 7, 11},    {13, 17, 3},   {15, 33, 1},    {1, 100, 40}, {29, 1, 7},
                          {10, 8, 8},    {9, 29, 6},    {3, 12, 5},    {65, 33, 129},  {200, 300, 170},
                          {14, 32, 385}, {64, 96, 800}, {3, 50, 193},  {41, 129, 64},  {1, 300, 50},
                          {70, 1, 4100}, {100, 4100, 1}};
  uint32_t seed = 1;
  for (const Shape& s : shapes) {
    check_against_naive<float>(s, seed++);
    check_against_naive<double>(s, seed++);
  }
}

TEST_CASE("gemm with K == 0 gives beta * C + bias", "[gemm]") {
  std::vector<float> C = {std::nanf(""), std::nanf(""), 1.f, 2.f, std::nanf(""), std::nanf("")};
  const std::vector<float> bias = {10.f, 20.f};
  gemm<float>(false, false, 1, 2, 0, nullptr, 1, nullptr, 2, 0.f, C.data(), 2);
  gemm<float>(true, true, 1, 2, 0, nullptr, 1, nullptr, 2, 1.f, C.data() + 2, 2);
  gemm<float>(false, false, 1, 2, 0, nullptr, 1, nullptr, 2, 0.f, C.data() + 4, 2, bias.data());
  CHECK(C == std::vector<float>{0.f, 0.f, 1.f, 2.f, 10.f, 20.f});
}

TEST_CASE("gemm results are bitwise identical for 1 and 2 threads", "[gemm]") {
  // The blocked path (3 k slices) and the small path split into row blocks.
  for (const Shape s : {Shape{300, 257, 513}, Shape{2000, 50, 60}}) {
    const auto A = random_matrix<float>(s.M * s.K, 7), B = random_matrix<float>(s.K * s.N, 8);
    const auto C0 = random_matrix<float>(s.M * s.N, 9);
    const int saved = omp_get_max_threads();
    for (bool trans_b : {false, true}) {
      CAPTURE(s.M, s.N, s.K, trans_b);
      std::vector<float> C1 = C0, C2 = C0;
      const int64_t ldb = trans_b ? s.K : s.N;
      omp_set_num_threads(1);
      gemm<float>(false, trans_b, s.M, s.N, s.K, A.data(), s.K, B.data(), ldb, 1.f, C1.data(), s.N);
      omp_set_num_threads(2);
      gemm<float>(false, trans_b, s.M, s.N, s.K, A.data(), s.K, B.data(), ldb, 1.f, C2.data(), s.N);
      CHECK(std::memcmp(C1.data(), C2.data(), C1.size() * sizeof(float)) == 0);
    }
    omp_set_num_threads(saved);
  }
}

TEST_CASE("gemm's a_sums have column_sums' bits on every path, thread count and precision", "[gemm]") {
  // Small, matrix-vector and blocked shapes: several k slices, row blocks split among threads, and
  // several column blocks (each block of A is packed once per column block, summed once).
  const Shape shapes[] = {{5, 7, 11},      {29, 1, 7},    {1, 100, 40}, {300, 64, 6400},
                          {1024, 64, 700}, {65, 33, 129}, {64, 4000, 384}};
  const int saved = omp_get_max_threads();
  for (const Shape s : shapes)
    for (bool trans_a : {false, true}) {
      CAPTURE(s.M, s.N, s.K, trans_a);
      const auto A = random_matrix<float>(s.M * s.K, 3), B = random_matrix<float>(s.K * s.N, 4);
      const auto start = random_matrix<float>(s.M, 5);
      std::vector<float> want = start;  // A is K x M when trans_a, else M x K
      if (trans_a)
        seqgrad::kernels::column_sums(want.data(), A.data(), s.M, s.K, s.M);
      else
        for (int64_t i = 0; i < s.M; ++i) want[size_t(i)] += seqgrad::kernels::sum(A.data() + i * s.K, s.K);
      for (int64_t i = 0; i < s.M; ++i) {  // and those are the sums, against float64
        double exact = start[size_t(i)], mag = std::abs(exact);
        for (int64_t k = 0; k < s.K; ++k) {
          const double a = trans_a ? A[size_t(k * s.M + i)] : A[size_t(i * s.K + k)];
          exact += a, mag += std::abs(a);
        }
        CHECK(std::abs(want[size_t(i)] - exact) <= 2 * (s.K + 1) * std::numeric_limits<float>::epsilon() * mag);
      }
      const bool bf16_runs = seqgrad::kernels::bf16::cpu_supported();
      for (int threads : {1, 2})
        for (bool bf16 : {false, true}) {
          if (bf16 && !bf16_runs) continue;
          CAPTURE(threads, bf16);
          omp_set_num_threads(threads);
          seqgrad::kernels::bf16::set_enabled(bf16);
          std::vector<float> C(size_t(s.M * s.N)), sums = start;
          gemm<float>(trans_a, false, s.M, s.N, s.K, A.data(), trans_a ? s.M : s.K, B.data(), s.N, 0.f, C.data(), s.N,
                      nullptr, sums.data());
          seqgrad::kernels::bf16::set_enabled(false);
          CHECK(std::memcmp(sums.data(), want.data(), want.size() * sizeof(float)) == 0);
        }
    }
  omp_set_num_threads(saved);
}
