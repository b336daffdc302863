// The workloads bench/compare_pytorch.py runs in both seqgrad and PyTorch:
//   BM_tutorial              the example trainer's model end to end: 100 sequences x 10 steps x 5
//                            features, RNN(8), per-step Linear(8, 1), BCE-with-logits, Adam,
//                            batch 10, 5 epochs (50 updates)
//   BM_train/<cell>/<H>      one training step: input 64, batch 64, 100 steps, 1 layer, Linear(H, 1)
//                            head on every step, MSE loss, forward + backward + Adam update
//   BM_infer/<cell>/<H>      the forward pass alone, under NoGradGuard
//   cell 3 is examples/peephole_lstm.h, a custom cell written from public ops (H=256 only): the
//   speed of the generic path that users' own cells take, next to the fused LSTM (cell 1)
//   BM_fma_peak              the machine's float32 FMA bound: independent fused multiply-adds on
//                            the widest vectors, on every OpenMP thread; the yardstick of the
//                            GFLOP/s column compare_pytorch.py prints
//   BM_bf16_peak             one core's AVX512_BF16 vdpbf16ps rate, the bf16 matmul mode's ceiling
//   BM_qinfer/<cell>/<H>     the same after quantize_dynamic (int8 weights)
//   BM_stream/<cell>/<H>/<L>/<int8>  one streaming step (step()), batch 1, input 64, L layers; counters:
//                            the weights' bytes and the time to read them once at the read bandwidth of
//                            a working set that size (bench/peaks.h), the bound a batch-1 step cannot beat
// Counters: seqs*steps per second (FLOP/s for the peak). Threads: OMP_NUM_THREADS.
// SEQGRAD_MATMUL_PRECISION=bf16 in the environment runs every workload in the opt-in bfloat16
// matmul mode (autograd/matmul_precision.h); the process exits with an error where the CPU lacks it.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <cstdlib>
#include <string>

#include "autograd/seqgrad.h"
#include "examples/peephole_lstm.h"
#include "layers/layers.h"
#include "optim/optim.h"
#include "bench/peaks.h"
#include "layers/quantize.h"

using namespace seqgrad;

namespace {

constexpr int64_t kBatch = 64, kSteps = 100, kInput = 64;
const char* kCells[] = {"rnn", "lstm", "gru", "peephole"};

// A recurrent layer of the given kind behind one forward signature.
struct Model {
  Model(int cell, int64_t hidden) {
    if (cell == 0) rnn = std::make_shared<RNN>(RNNOptions{.input_size = kInput, .hidden_size = hidden});
    if (cell == 1) lstm = std::make_shared<LSTM>(LSTMOptions{.input_size = kInput, .hidden_size = hidden});
    if (cell == 2) gru = std::make_shared<GRU>(GRUOptions{.input_size = kInput, .hidden_size = hidden});
    if (cell == 3) peephole = std::make_shared<examples::PeepholeLSTM>(kInput, hidden);
    head = std::make_shared<Linear>(LinearOptions{.in_features = hidden, .out_features = 1});
  }
  Tensor forward(const Tensor& x) {
    if (rnn) return rnn->forward(x).output;
    if (lstm) return lstm->forward(x).output;
    if (peephole) return peephole->forward(x);
    return gru->forward(x).output;
  }
  std::vector<Tensor> parameters() const {
    Module* m = rnn ? static_cast<Module*>(rnn.get())
                : lstm ? static_cast<Module*>(lstm.get())
                : peephole ? static_cast<Module*>(peephole.get())
                : gru.get();
    auto p = m->parameters();
    for (auto& q : head->parameters()) p.push_back(q);
    return p;
  }
  std::shared_ptr<RNN> rnn;
  std::shared_ptr<LSTM> lstm;
  std::shared_ptr<GRU> gru;
  std::shared_ptr<examples::PeepholeLSTM> peephole;
  std::shared_ptr<Linear> head;
};

void BM_train(benchmark::State& s) {
  Model m(int(s.range(0)), s.range(1));
  Generator g(1);
  Tensor x = normal({kBatch, kSteps, kInput}, 0, 1, g), y = normal({kBatch, kSteps, 1}, 0, 1, g);
  optim::Adam opt(m.parameters(), {.lr = 1e-3});
  for (auto _ : s) {
    Tensor loss = mse_loss(m.head->forward(m.forward(x)), y);
    loss.backward();
    opt.step();
    opt.zero_grad();
  }
  s.counters["seq_steps/s"] = benchmark::Counter(double(kBatch * kSteps), benchmark::Counter::kIsIterationInvariantRate);
  s.SetLabel(kCells[s.range(0)]);
}

void BM_infer(benchmark::State& s) {
  Model m(int(s.range(0)), s.range(1));
  Generator g(1);
  Tensor x = normal({kBatch, kSteps, kInput}, 0, 1, g);
  NoGradGuard no_grad;
  for (auto _ : s) benchmark::DoNotOptimize(m.forward(x));
  s.counters["seq_steps/s"] = benchmark::Counter(double(kBatch * kSteps), benchmark::Counter::kIsIterationInvariantRate);
  s.SetLabel(kCells[s.range(0)]);
}

void BM_qinfer(benchmark::State& s) {
  Model m(int(s.range(0)), s.range(1));
  Generator g(1);
  Tensor x = normal({kBatch, kSteps, kInput}, 0, 1, g);
  NoGradGuard no_grad;
  quantize_dynamic(*(m.rnn ? static_cast<Module*>(m.rnn.get()) : m.lstm ? static_cast<Module*>(m.lstm.get()) : m.gru.get()));
  for (auto _ : s) benchmark::DoNotOptimize(m.forward(x));
  s.counters["seq_steps/s"] = benchmark::Counter(double(kBatch * kSteps), benchmark::Counter::kIsIterationInvariantRate);
  s.SetLabel(kCells[s.range(0)]);
}

void BM_stream(benchmark::State& s) {
  const int cell = int(s.range(0));
  const int64_t H = s.range(1), L = s.range(2);
  const bool int8 = s.range(3) != 0;
  std::shared_ptr<detail::RecurrentBase> layer;
  if (cell == 1) layer = std::make_shared<LSTM>(LSTMOptions{.input_size = kInput, .hidden_size = H, .num_layers = L});
  else if (cell == 2) layer = std::make_shared<GRU>(GRUOptions{.input_size = kInput, .hidden_size = H, .num_layers = L});
  else layer = std::make_shared<RNN>(RNNOptions{.input_size = kInput, .hidden_size = H, .num_layers = L});
  if (int8) quantize_dynamic(*layer);
  double bytes = 0;  // what one step reads: every weight once (int8: 1 byte + 4 per row of scales), the biases
  for (auto& [name, p] : layer->named_parameters())
    bytes += name.starts_with("weight") && int8 ? double(p.numel() + 4 * p.size(0)) : 4.0 * double(p.numel());
  Generator g(1);
  Tensor x = normal({1, kInput}, 0, 1, g);
  StreamState st = layer->initial_state(1);
  layer->step(x, st);
  for (auto _ : s) benchmark::DoNotOptimize(layer->step(x, st).data<float>());
  s.counters["weight_MB"] = bytes / 1e6;
  s.counters["bound_us"] = bytes / bench::read_bandwidth(size_t(bytes)) * 1e6;
  s.SetLabel(fmt::format("{}{}", kCells[cell], int8 ? " int8" : ""));
}

void BM_tutorial(benchmark::State& s) {
  Generator g(1);
  Tensor x = uniform({100, 10, 5}, -1, 1, g), y = uniform({100, 10, 1}, 0, 1, g);
  for (float& v : y.span<float>()) v = v > 0.5f;
  for (auto _ : s) {
    RNN rnn({.input_size = 5, .hidden_size = 8});
    Linear head({.in_features = 8, .out_features = 1});
    auto params = rnn.parameters();
    for (auto& p : head.parameters()) params.push_back(p);
    optim::Adam opt(params, {.lr = 0.01});
    for (int epoch = 0; epoch < 5; ++epoch)
      for (int64_t b = 0; b < 100; b += 10) {
        Tensor loss = binary_cross_entropy_with_logits(head.forward(rnn.forward(x.slice(0, b, b + 10)).output),
                                                       y.slice(0, b, b + 10));
        loss.backward();
        opt.step();
        opt.zero_grad();
      }
  }
  s.counters["updates/s"] = benchmark::Counter(50, benchmark::Counter::kIsIterationInvariantRate);
}

// 12 independent accumulators per thread: more than the FMA latency times the FMA ports, so the loop
// is bound by FMA throughput alone. Returns the FLOPs done (2 per lane per FMA). One function per
// instruction set, since target attributes do not reach into templates or lambdas.
#define SEQGRAD_FMA_LOOP(V, set1, fmadd, lanes)                        \
  V acc[12], m = set1(0.999f);                                         \
  for (auto& a : acc) a = m;                                           \
  for (int64_t i = 0; i < iters; ++i)                                  \
    for (auto& a : acc) a = fmadd(a, m, m);                            \
  for (int k = 1; k < 12; ++k) acc[0] = fmadd(acc[0], m, acc[k]);      \
  benchmark::DoNotOptimize(acc[0]);                                    \
  return 2.0 * (lanes) * 12.0 * double(iters)

__attribute__((target("avx512f"))) double fma_avx512(int64_t iters) { SEQGRAD_FMA_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, 16); }
__attribute__((target("avx2,fma"))) double fma_avx2(int64_t iters) { SEQGRAD_FMA_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, 8); }

void BM_fma_peak(benchmark::State& s) {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  double flops = 0;
  for (auto _ : s) {
#pragma omp parallel reduction(+ : flops)
    flops += avx512 ? fma_avx512(1 << 20) : fma_avx2(1 << 20);
  }
  s.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsRate);
  s.SetLabel(fmt::format("{} x {} thread(s)", avx512 ? "avx512f" : "avx2+fma", omp_get_max_threads()));
}

// One core's vdpbf16ps rate: what the bf16 matmul mode can reach, against BM_fma_peak's float32.
void BM_bf16_peak(benchmark::State& s) {
  for (auto _ : s) s.counters["FLOP/s"] = bench::bf16_peak_flops();
}

void cells_and_sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"cell", "hidden"});
  for (int64_t h : {256, 512})
    for (int64_t c = 0; c < 3; ++c) b->Args({c, h});
  b->Args({3, 256});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_fma_peak)->UseRealTime();
BENCHMARK(BM_bf16_peak)->UseRealTime();
BENCHMARK(BM_tutorial)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_train)->Apply(cells_and_sizes);
BENCHMARK(BM_infer)->Apply(cells_and_sizes);
BENCHMARK(BM_qinfer)->ArgNames({"cell", "hidden"})->ArgsProduct({{1, 2}, {256, 512}})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_stream)
    ->ArgNames({"cell", "hidden", "layers", "int8"})
    ->ArgsProduct({{1, 2}, {256, 1024}, {1, 2}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  if (const char* p = std::getenv("SEQGRAD_MATMUL_PRECISION"); p && std::string(p) == "bf16")
    set_matmul_precision(MatmulPrecision::bf16);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
