// Deployment kernels against the machine's ceilings (bench/peaks.h):
//   BM_qgemm/M/N/K/isa   the int8 GEMM alone (activations already quantized) at the shapes of the
//                        LSTM/GRU forward rows of bench_compare (input projection B*T x G*H x 64,
//                        hidden product B x G*H x H); isa 0 plain C++, 1 AVX2, 2 AVX-512 VNNI.
//                        Counters: int8 ops/s (2 per multiply-add) and the fraction of the VNNI peak.
//   BM_vnni_peak         the peak itself: independent vpdpbusd on one core.
//   BM_read_bw/bytes     read bandwidth at a working set of that size (the streaming rows' bound).
// One thread: OMP_NUM_THREADS=1.
#include <benchmark/benchmark.h>

#include "autograd/seqgrad.h"
#include "bench/peaks.h"
#include "autograd/kernels/qgemm.h"

using namespace seqgrad;

namespace {
double vnni_peak() {
  static const double peak = bench::vnni_peak_ops();
  return peak;
}

void BM_qgemm(benchmark::State& s) {
  const int64_t M = s.range(0), N = s.range(1), K = s.range(2);
  const auto isa = quant::QIsa(s.range(3));
  if (int(isa) > int(quant::best_qisa())) return s.SkipWithError("this CPU lacks the ISA");
  const quant::QIsa saved = quant::qisa();
  quant::set_qisa(isa);
  Generator g(1);
  Tensor w = uniform({N, K}, -1, 1, g), a = uniform({M, K}, -1, 1, g), c = Tensor::empty({M, N});
  const quant::QMatrix q = quant::QMatrix::quantize(w.data<float>(), N, K);
  std::vector<int8_t> aq(static_cast<size_t>(M * q.Kp));
  std::vector<float> as(static_cast<size_t>(M));
  quant::quantize_rows(M, K, a.data<float>(), K, aq.data(), q.Kp, as.data());
  for (auto _ : s) {
    quant::qgemm(M, aq.data(), q.Kp, as.data(), q, false, c.data<float>(), N, nullptr);
    benchmark::ClobberMemory();
  }
  quant::set_qisa(saved);
  const double ops = 2.0 * double(M * N * K);
  s.counters["int8_ops/s"] = benchmark::Counter(ops, benchmark::Counter::kIsIterationInvariantRate);
  s.counters["of_vnni_peak"] = benchmark::Counter(ops / vnni_peak(), benchmark::Counter::kIsIterationInvariantRate);
  s.SetLabel(quant::qisa_name(isa));
}

void BM_vnni_peak(benchmark::State& s) {
  for (auto _ : s) s.counters["int8_ops/s"] = bench::vnni_peak_ops();
}

void BM_read_bw(benchmark::State& s) {
  for (auto _ : s) s.counters["GB/s"] = bench::read_bandwidth(size_t(s.range(0))) / 1e9;
}
}  // namespace

// LSTM (G=4) and GRU (G=3) at H=256 and 512: the projection (6400 x GH x 64) and the hidden product (64 x GH x H).
BENCHMARK(BM_qgemm)
    ->ArgNames({"M", "N", "K", "isa"})
    ->ArgsProduct({{6400}, {1024, 768, 2048, 1536}, {64}, {1, 2}})
    ->Args({64, 1024, 256, 1})->Args({64, 1024, 256, 2})->Args({64, 768, 256, 2})
    ->Args({64, 2048, 512, 1})->Args({64, 2048, 512, 2})->Args({64, 1536, 512, 2})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_vnni_peak)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_read_bw)->Arg(32 << 10)->Arg(512 << 10)->Arg(4 << 20)->Arg(64 << 20)->Iterations(1)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
