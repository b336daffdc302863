// The workloads of bench_compare.cpp run in libtorch (PyTorch's C++ API, Debian's libtorch-dev 1.13):
// PyTorch without the Python interpreter, a third column for bench/compare_pytorch.py. Same benchmark
// names and arguments as bench_compare.cpp, so that the script pairs the rows:
//   BM_tutorial              100 sequences x 10 steps x 5 features, RNN(8), per-step Linear(8, 1),
//                            BCE-with-logits, Adam, batch 10, 5 epochs (50 updates), model built inside
//   BM_train/<cell>/<H>      one training step: input 64, batch 64, 100 steps, 1 layer, Linear(H, 1)
//                            head on every step, MSE loss, forward + backward + Adam update
//   BM_infer/<cell>/<H>      the forward pass alone, under NoGradGuard
// Threads: torch::set_num_threads(OMP_NUM_THREADS). Built only with -DSEQGRAD_BENCH_LIBTORCH=ON.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdlib>

namespace {

constexpr int64_t kBatch = 64, kSteps = 100, kInput = 64;
const char* kCells[] = {"rnn", "lstm", "gru"};

// A recurrent layer of the given kind behind one forward signature.
struct Model {
  Model(int cell, int64_t hidden) {
    if (cell == 0) rnn = torch::nn::RNN(torch::nn::RNNOptions(kInput, hidden).batch_first(true));
    if (cell == 1) lstm = torch::nn::LSTM(torch::nn::LSTMOptions(kInput, hidden).batch_first(true));
    if (cell == 2) gru = torch::nn::GRU(torch::nn::GRUOptions(kInput, hidden).batch_first(true));
    head = torch::nn::Linear(hidden, 1);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    if (rnn) return std::get<0>(rnn->forward(x));
    if (lstm) return std::get<0>(lstm->forward(x));
    return std::get<0>(gru->forward(x));
  }
  std::vector<torch::Tensor> parameters() const {
    auto p = rnn ? rnn->parameters() : lstm ? lstm->parameters() : gru->parameters();
    for (auto& q : head->parameters()) p.push_back(q);
    return p;
  }
  torch::nn::RNN rnn{nullptr};
  torch::nn::LSTM lstm{nullptr};
  torch::nn::GRU gru{nullptr};
  torch::nn::Linear head{nullptr};
};

void BM_train(benchmark::State& s) {
  Model m(int(s.range(0)), s.range(1));
  torch::Tensor x = torch::randn({kBatch, kSteps, kInput}), y = torch::randn({kBatch, kSteps, 1});
  torch::optim::Adam opt(m.parameters(), torch::optim::AdamOptions(1e-3));
  for (auto _ : s) {
    torch::Tensor loss = torch::mse_loss(m.head->forward(m.forward(x)), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  s.counters["seq_steps/s"] = benchmark::Counter(double(kBatch * kSteps), benchmark::Counter::kIsIterationInvariantRate);
  s.SetLabel(kCells[s.range(0)]);
}

void BM_infer(benchmark::State& s) {
  Model m(int(s.range(0)), s.range(1));
  torch::Tensor x = torch::randn({kBatch, kSteps, kInput});
  torch::NoGradGuard no_grad;
  for (auto _ : s) benchmark::DoNotOptimize(m.forward(x));
  s.counters["seq_steps/s"] = benchmark::Counter(double(kBatch * kSteps), benchmark::Counter::kIsIterationInvariantRate);
  s.SetLabel(kCells[s.range(0)]);
}

void BM_tutorial(benchmark::State& s) {
  torch::Tensor x = torch::rand({100, 10, 5}) * 2 - 1, y = (torch::rand({100, 10, 1}) > 0.5).to(torch::kFloat);
  torch::Tensor loss;
  for (auto _ : s) {
    torch::nn::RNN rnn(torch::nn::RNNOptions(5, 8).batch_first(true));
    torch::nn::Linear head(8, 1);
    auto params = rnn->parameters();
    for (auto& p : head->parameters()) params.push_back(p);
    torch::optim::Adam opt(params, torch::optim::AdamOptions(0.01));
    for (int epoch = 0; epoch < 5; ++epoch)
      for (int64_t b = 0; b < 100; b += 10) {
        loss = torch::binary_cross_entropy_with_logits(head->forward(std::get<0>(rnn->forward(x.slice(0, b, b + 10)))),
                                                       y.slice(0, b, b + 10));
        opt.zero_grad();
        loss.backward();
        opt.step();
      }
  }
  s.counters["updates/s"] = benchmark::Counter(50, benchmark::Counter::kIsIterationInvariantRate);
  // The labels are random, so a sane run ends near ln 2 = 0.69; read once, outside the timed loop.
  s.counters["last_loss"] = loss.item<double>();
}

void cells_and_sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"cell", "hidden"});
  for (int64_t h : {256, 512})
    for (int64_t c = 0; c < 3; ++c) b->Args({c, h});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_tutorial)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_train)->Apply(cells_and_sizes);
BENCHMARK(BM_infer)->Apply(cells_and_sizes);

int main(int argc, char** argv) {
  // libtorch sizes its own pool; take the thread count from the same variable as seqgrad and OpenMP.
  if (const char* t = std::getenv("OMP_NUM_THREADS"); t && std::atoi(t) > 0) torch::set_num_threads(std::atoi(t));
  torch::manual_seed(0);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
