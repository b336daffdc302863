// Element-wise, activation and reduction kernels against a plain xsimd loop compiled for this
// machine (-march=native) and against memcpy of the same bytes, plus the per-op overhead of the
// Tensor API on the tiny tensors of the tutorial model. Counters: bytes/s of the arrays touched.
// Threads: OMP_NUM_THREADS.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "autograd/kernels/elementwise.h"
#include "autograd/seqgrad.h"

using namespace seqgrad;
namespace k = seqgrad::kernels;

namespace {

struct Arrays {
  explicit Arrays(int64_t n) : a(n), b(n), y(n) {
    Generator g(1);
    for (int64_t i = 0; i < n; ++i) a[i] = float(g.uniform(-2, 2)), b[i] = float(g.uniform(0.5, 2));
  }
  std::vector<float> a, b, y;
};

void set_bytes(benchmark::State& s, int64_t n, int arrays) {
  s.SetBytesProcessed(int64_t(s.iterations()) * n * arrays * int64_t(sizeof(float)));
}

// The plain loop every kernel is compared with: one batch at a time, scalar tail.
template <class F, class G>
void plain_loop(float* y, const float* a, const float* b, int64_t n, F&& vec, G&& scalar) {
  using B = xsimd::batch<float>;
  int64_t i = 0;
  for (; i + int64_t(B::size) <= n; i += B::size) vec(B::load_unaligned(a + i), B::load_unaligned(b + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] = scalar(a[i], b[i]);
}

void BM_add_seqgrad(benchmark::State& s) {
  Arrays d(s.range(0));
  for (auto _ : s) k::binary(k::Binary::add, d.y.data(), d.a.data(), 1, d.b.data(), 1, s.range(0));
  set_bytes(s, s.range(0), 3);
}
void BM_add_plain(benchmark::State& s) {
  Arrays d(s.range(0));
  for (auto _ : s)
    plain_loop(d.y.data(), d.a.data(), d.b.data(), s.range(0), [](auto x, auto y) { return x + y; },
               [](float x, float y) { return x + y; });
  set_bytes(s, s.range(0), 3);
}
void BM_mul_seqgrad(benchmark::State& s) {
  Arrays d(s.range(0));
  for (auto _ : s) k::binary(k::Binary::mul, d.y.data(), d.a.data(), 1, d.b.data(), 1, s.range(0));
  set_bytes(s, s.range(0), 3);
}
void BM_tanh_seqgrad(benchmark::State& s) {
  Arrays d(s.range(0));
  for (auto _ : s) k::unary(k::Unary::tanh, d.y.data(), d.a.data(), s.range(0));
  set_bytes(s, s.range(0), 2);
}
void BM_tanh_plain(benchmark::State& s) {
  Arrays d(s.range(0));
  for (auto _ : s)
    plain_loop(d.y.data(), d.a.data(), d.b.data(), s.range(0), [](auto x, auto) { return xsimd::tanh(x); },
               [](float x, float) { return std::tanh(x); });
  set_bytes(s, s.range(0), 2);
}
void BM_sigmoid_seqgrad(benchmark::State& s) {
  Arrays d(s.range(0));
  for (auto _ : s) k::unary(k::Unary::sigmoid, d.y.data(), d.a.data(), s.range(0));
  set_bytes(s, s.range(0), 2);
}
void BM_sigmoid_plain(benchmark::State& s) {
  Arrays d(s.range(0));
  for (auto _ : s)
    plain_loop(d.y.data(), d.a.data(), d.b.data(), s.range(0),
               [](auto x, auto) { return decltype(x)(1) / (decltype(x)(1) + xsimd::exp(-x)); },
               [](float x, float) { return 1 / (1 + std::exp(-x)); });
  set_bytes(s, s.range(0), 2);
}
void BM_sum_seqgrad(benchmark::State& s) {
  Arrays d(s.range(0));
  for (auto _ : s) benchmark::DoNotOptimize(k::sum(d.a.data(), s.range(0)));
  set_bytes(s, s.range(0), 1);
}
void BM_sum_plain(benchmark::State& s) {
  Arrays d(s.range(0));
  using B = xsimd::batch<float>;
  for (auto _ : s) {
    B acc(0.f);
    int64_t i = 0, n = s.range(0);
    for (; i + int64_t(B::size) <= n; i += B::size) acc += B::load_unaligned(d.a.data() + i);
    float r = xsimd::hadd(acc);
    for (; i < n; ++i) r += d.a[i];
    benchmark::DoNotOptimize(r);
  }
  set_bytes(s, s.range(0), 1);
}
void BM_memcpy(benchmark::State& s) {
  Arrays d(s.range(0));
  for (auto _ : s) {
    std::memcpy(d.y.data(), d.a.data(), size_t(s.range(0)) * sizeof(float));
    benchmark::ClobberMemory();
  }
  set_bytes(s, s.range(0), 2);
}

// Per-op cost of the Tensor API (allocation, checks, dispatch, recording) at the tutorial's sizes.
void BM_op_overhead_add_10x8(benchmark::State& s) {
  Generator g(2);
  Tensor a = uniform({10, 8}, -1, 1, g).requires_grad_(s.range(0) != 0), b = uniform({10, 8}, -1, 1, g);
  for (auto _ : s) {
    benchmark::DoNotOptimize(add(a, b));
    if (Tape::current().size() > 4096) Tape::current().clear();
  }
  Tape::current().clear();
  s.SetLabel(s.range(0) ? "recorded" : "no grad");
}

constexpr int64_t kSizes[] = {1 << 12, 1 << 16, 1 << 20};

}  // namespace

#define ELEMENTWISE(fn) BENCHMARK(fn)->Arg(kSizes[0])->Arg(kSizes[1])->Arg(kSizes[2])->UseRealTime()
ELEMENTWISE(BM_add_seqgrad);
ELEMENTWISE(BM_add_plain);
ELEMENTWISE(BM_mul_seqgrad);
ELEMENTWISE(BM_tanh_seqgrad);
ELEMENTWISE(BM_tanh_plain);
ELEMENTWISE(BM_sigmoid_seqgrad);
ELEMENTWISE(BM_sigmoid_plain);
ELEMENTWISE(BM_sum_seqgrad);
ELEMENTWISE(BM_sum_plain);
ELEMENTWISE(BM_memcpy);
BENCHMARK(BM_op_overhead_add_10x8)->Arg(0)->Arg(1);

BENCHMARK_MAIN();
