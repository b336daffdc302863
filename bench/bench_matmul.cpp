// Matrix-multiply throughput: kernels::gemm against OpenBLAS (when built with SEQGRAD_HAVE_CBLAS) and a
// naive loop, row-major float32 unless named f64. Names read <op>/<M>x<K>x<N>/<impl>, op being nn (A B),
// tn (A^T B) or nt (A B^T), so each of our lines sits next to its OpenBLAS line. `packed` lines are
// the recurrent cells' products: op(B) = W_hh (^T) packed once outside the loop (gemm_packed), as a
// sequence layer does for its T steps. Threads follow OMP_NUM_THREADS; OpenBLAS is given the same
// count. See bench/README.md for the command and figures.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <random>
#include <string>
#include <vector>

#include "autograd/kernels/arch.h"
#include "autograd/kernels/gemm.h"

#ifdef SEQGRAD_HAVE_CBLAS
#include <cblas.h>
#endif

namespace {

enum class Impl { seqgrad, packed, openblas, naive };

struct Case {
  const char* op;  // nn, tn, nt
  int64_t M, K, N;
};

// The reference everyone starts from: i-k-j order, which at least streams B and C rows and lets the
// compiler vectorise the inner loop (the library's flags: -O3, no -march).
template <class T>
void matmul_naive(int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) C[i * N + j] = 0;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < N; ++j) C[i * N + j] += A[i * K + k] * B[k * N + j];
  }
}

template <class T>
void bm_matmul(benchmark::State& state, Case c, Impl impl) {
  const bool ta = c.op[0] == 't', tb = c.op[1] == 't';
  const int64_t lda = ta ? c.M : c.K, ldb = tb ? c.K : c.N;
  std::mt19937 gen(42);
  std::uniform_real_distribution<T> dist(-1, 1);
  std::vector<T> A(size_t(c.M * c.K)), B(size_t(c.K * c.N)), C(size_t(c.M * c.N));
  for (auto& x : A) x = dist(gen);
  for (auto& x : B) x = dist(gen);
  std::vector<T> packed(size_t(seqgrad::kernels::gemm_packed_size<T>(c.K, c.N)) + 64 / sizeof(T));
  const seqgrad::kernels::PackedB<T> pb{.trans = tb, .K = c.K, .N = c.N, .src = B.data(), .ldb = ldb,
                                        .data = packed.data() + (64 - uintptr_t(packed.data()) % 64) % 64 / sizeof(T)};
  if (impl == Impl::packed) seqgrad::kernels::gemm_pack_b(pb);
  for (auto _ : state) {
    switch (impl) {
      case Impl::seqgrad:
        seqgrad::kernels::gemm<T>(ta, tb, c.M, c.N, c.K, A.data(), lda, B.data(), ldb, T(0), C.data(), c.N);
        break;
      case Impl::packed:
        seqgrad::kernels::gemm_packed<T>(c.M, A.data(), lda, pb, T(0), C.data(), c.N);
        break;
      case Impl::openblas:
#ifdef SEQGRAD_HAVE_CBLAS
        if constexpr (std::is_same_v<T, float>)
          cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(c.M), int(c.N),
                      int(c.K), 1.f, A.data(), int(lda), B.data(), int(ldb), 0.f, C.data(), int(c.N));
        else
          cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(c.M), int(c.N),
                      int(c.K), 1.0, A.data(), int(lda), B.data(), int(ldb), 0.0, C.data(), int(c.N));
#endif
        break;
      case Impl::naive:
        matmul_naive(c.M, c.N, c.K, A.data(), B.data(), C.data());
        break;
    }
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(c.M) * double(c.N) * double(c.K),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::OneK::kIs1000);
}

template <class T>
void add(const char* prefix, Case c, bool with_naive, bool with_packed = false) {
  std::vector<std::pair<Impl, const char*>> impls = {{Impl::seqgrad, "seqgrad"}};
  if (with_packed) impls.push_back({Impl::packed, "packed"});
#ifdef SEQGRAD_HAVE_CBLAS
  impls.push_back({Impl::openblas, "openblas"});
#endif
  if (with_naive) impls.push_back({Impl::naive, "naive"});
  for (auto [impl, impl_name] : impls) {
    const std::string name = std::string(prefix) + c.op + "/" + std::to_string(c.M) + "x" + std::to_string(c.K) + "x" +
                             std::to_string(c.N) + "/" + impl_name;
    benchmark::RegisterBenchmark(name.c_str(), bm_matmul<T>, c, impl)->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = omp_get_max_threads();
#ifdef SEQGRAD_HAVE_CBLAS
  openblas_set_num_threads(threads);
  benchmark::AddCustomContext("openblas", openblas_get_config());
#endif
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("seqgrad_arch", seqgrad::kernels::best_arch_name());

  add<float>("", {"nn", 10, 8, 8}, false);  // the RNN example's cell: overhead, not throughput
  for (int64_t n : {64, 128, 256, 512, 1024}) add<float>("", {"nn", n, n, n}, n <= 512);
  const Case rnn[] = {{"", 64, 256, 1024}, {"", 64, 512, 2048}, {"", 6400, 64, 1024}, {"", 6400, 64, 2048}};
  for (const char* op : {"nn", "tn", "nt"}) {
    if (op[0] != 'n' || op[1] != 'n') add<float>("", {op, 1024, 1024, 1024}, false);
    for (Case c : rnn) add<float>("", {op, c.M, c.K, c.N}, false, op[0] == 'n' && c.M == 64);
  }
  // An RNN step at H=512 and a GRU step at H=256 and 512 (h W_hh^T), and the cells' backward dg W_hh
  // at H=256 and 512.
  add<float>("", {"nt", 64, 512, 512}, false, true);
  // The RNN H=512 step's weight gradient dg^T h (K = batch 64), against one product over all 100
  // steps (K = 6400): what deferring dW_hh to the end of the sequence would run.
  add<float>("", {"tn", 512, 64, 512}, false);
  add<float>("", {"tn", 512, 6400, 512}, false);
  add<float>("", {"nt", 64, 256, 768}, false, true);
  add<float>("", {"nt", 64, 512, 1536}, false, true);
  add<float>("", {"nn", 64, 1024, 256}, false, true);
  add<float>("", {"nn", 64, 2048, 512}, false, true);
  add<double>("f64/", {"nn", 1024, 1024, 1024}, false);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
