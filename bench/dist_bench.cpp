// dist_bench: data-parallel training step time, run alone or under mpirun (bench/compare_dist.py
// runs both, and PyTorch DistributedDataParallel, side by side).
//
// The model of bench_compare's BM_train LSTM row: LSTM(64 -> 256), Linear(256 -> 1) on every one
// of 100 steps, MSE, Adam; a global batch of 64 sequences split evenly over the ranks. Prints one
// JSON line (rank 0): ranks, median ms per step, and per step the allreduce's ms and bytes sent
// and the time spent waiting for the slower rank before it.
//   dist_bench [steps=20]                     mpirun -n 2 dist_bench [steps]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include <fmt/core.h>

#include "autograd/seqgrad.h"
#include "dist/dist.h"
#include "layers/layers.h"
#include "optim/optim.h"

using namespace seqgrad;

int main(int argc, char** argv) {
  dist::Environment env(argc, argv);
  const int steps = argc > 1 ? std::atoi(argv[1]) : 20, warmup = 3;
  const int64_t global_batch = 64, T = 100, input = 64, hidden = 256;
  if (steps < 1 || global_batch % env.world_size()) {
    fmt::print(stderr, "dist_bench: steps >= 1 and a world size dividing 64\n");
    return env.fail(2);
  }
  const int64_t batch = global_batch / env.world_size();
  LSTM lstm({.input_size = input, .hidden_size = hidden});
  Linear head({.in_features = hidden, .out_features = 1});
  std::vector<Tensor> params = lstm.parameters();
  for (const Tensor& p : head.parameters()) params.push_back(p);
  Generator g(uint64_t(1 + env.rank()));  // each rank its own shard of data
  Tensor x = normal({batch, T, input}, 0, 1, g), y = normal({batch, T, 1}, 0, 1, g);
  optim::Adam opt(params, {.lr = 1e-3});

  std::vector<double> step_ms;
  double wait_ms = 0;
  for (int s = 0; s < warmup + steps; ++s) {
    if (s == warmup) dist::reset_stats();
    dist::barrier();  // steps start together: the time is the slowest rank's
    auto start = std::chrono::steady_clock::now();
    mse_loss(head.forward(lstm.forward(x).output), y).backward();
    // Timed apart: waiting for the slower rank (load imbalance, other processes) is not the exchange.
    auto before_wait = std::chrono::steady_clock::now();
    dist::barrier();
    if (s >= warmup) wait_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - before_wait).count();
    dist::allreduce_gradients(params);
    opt.step();
    opt.zero_grad();
    if (s >= warmup) step_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  const double allreduce_s = dist::stats().seconds;
  const int64_t bytes = dist::stats().bytes_sent;
  std::sort(step_ms.begin(), step_ms.end());
  // Steps start together and end in the same collective: the ranks' medians agree closely.
  double median = dist::allreduce_mean(step_ms[step_ms.size() / 2]);
  if (env.rank() == 0)
    fmt::print("{{\"ranks\": {}, \"threads\": {}, \"batch_per_rank\": {}, \"ms_per_step\": {:.3f}, \"allreduce_ms_per_step\": {:.3f}, "
               "\"allreduce_bytes_per_step\": {}, \"wait_ms_per_step\": {:.3f}}}\n",
               env.world_size(), omp_get_max_threads(), batch, median, 1e3 * allreduce_s / steps, bytes / steps,
               wait_ms / steps);
  return 0;
}
