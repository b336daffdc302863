// Recurrent layers end to end: RNN, LSTM and GRU built from tape ops, timed as a training step
// (forward + backward through the unrolled tape + zero_grad) and as a forward pass alone (under
// NoGradGuard, nothing recorded). Names read <layer>/<train|forward>/H<hidden>; all cases are
// float32, batch 64, 100 steps, input 64, 1 layer. Two counters per case:
//   time_per_step  seconds per time step of one iteration (iteration time / 100)
//   samples/s      (batch * steps) / iteration time: sequence elements processed per second
// The tiny/... cases are the tutorial's model (100 sequences x 10 steps x 5 features -> RNN with 8
// hidden): there the time is per-op overhead, not arithmetic. Threads follow OMP_NUM_THREADS.
// The scaling/LSTM/train cases also report memory: step_MB, the growth of the peak resident set
// over the resident set before the first iteration (tensor pool and malloc emptied, so every
// buffer of the step counts); min_MB, the activations BPTT must keep (gates i, f, g, o and states
// c, h: 6H floats per sequence step); and mem_ratio = step_MB / min_MB.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <malloc.h>

#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "autograd/seqgrad.h"
#include "layers/layers.h"

namespace {

using namespace seqgrad;

enum class Kind { rnn, lstm, gru };

struct Model {
  std::shared_ptr<Module> module;
  std::function<Tensor(const Tensor&)> forward;  // x -> per-step output
};

Model make(Kind kind, int64_t input, int64_t hidden) {
  switch (kind) {
    case Kind::lstm: {
      auto m = std::make_shared<LSTM>(LSTMOptions{.input_size = input, .hidden_size = hidden, .seed = 1});
      return {m, [m](const Tensor& x) { return m->forward(x).output; }};
    }
    case Kind::gru: {
      auto m = std::make_shared<GRU>(GRUOptions{.input_size = input, .hidden_size = hidden, .seed = 1});
      return {m, [m](const Tensor& x) { return m->forward(x).output; }};
    }
    default: {
      auto m = std::make_shared<RNN>(RNNOptions{.input_size = input, .hidden_size = hidden, .seed = 1});
      return {m, [m](const Tensor& x) { return m->forward(x).output; }};
    }
  }
}

void set_counters(benchmark::State& state, int64_t batch, int64_t steps) {
  using C = benchmark::Counter;
  state.counters["time_per_step"] = C(double(steps), C::kIsIterationInvariantRate | C::kInvert);
  state.counters["samples/s"] = C(double(batch * steps), C::kIsIterationInvariantRate);
}

// A field of /proc/self/status ("VmRSS", "VmHWM": the peak since reset_peak_rss()), in bytes.
double proc_status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) * 1024;  // "... kB"
  return 0;
}
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

void bm_train(benchmark::State& state, Kind kind, int64_t batch, int64_t steps, int64_t input, int64_t hidden,
              bool memory) {
  Model model = make(kind, input, hidden);
  Generator gen(2);
  Tensor x = uniform({batch, steps, input}, -1, 1, gen);
  release_cached_memory();
  malloc_trim(0);
  const double before = proc_status_bytes("VmRSS");
  reset_peak_rss();
  for (auto _ : state) {
    Tensor loss = mean(model.forward(x));
    loss.backward();
    benchmark::DoNotOptimize(model.module->parameters()[0].grad().raw());
    model.module->zero_grad();
  }
  set_counters(state, batch, steps);
  if (memory) {
    const double step = proc_status_bytes("VmHWM") - before, minimum = 6.0 * hidden * batch * steps * sizeof(float);
    state.counters["step_MB"] = step / 1e6;
    state.counters["min_MB"] = minimum / 1e6;
    state.counters["mem_ratio"] = step / minimum;
  }
}

void bm_forward(benchmark::State& state, Kind kind, int64_t batch, int64_t steps, int64_t input, int64_t hidden) {
  Model model = make(kind, input, hidden);
  Generator gen(2);
  Tensor x = uniform({batch, steps, input}, -1, 1, gen);
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor y = model.forward(x);
    benchmark::DoNotOptimize(y.raw());
  }
  set_counters(state, batch, steps);
}

// A training step with anomaly detection or the profiler on (autograd/debug.h), against the same
// step off: the overhead of each when on. (Off against the code before them: bench/README.md.)
void bm_train_debug(benchmark::State& state, Kind kind, int64_t batch, int64_t steps, int64_t input, int64_t hidden,
                    std::string mode) {
  std::optional<DetectAnomaly> anomaly;
  std::optional<Profiler> prof;
  if (mode == "anomaly") anomaly.emplace();
  if (mode == "profile") prof.emplace();
  bm_train(state, kind, batch, steps, input, hidden, false);
}

int register_all() {
  const std::pair<Kind, const char*> kinds[] = {{Kind::rnn, "RNN"}, {Kind::lstm, "LSTM"}, {Kind::gru, "GRU"}};
  for (auto [kind, name] : kinds)
    for (int64_t hidden : {256, 512}) {
      std::string suffix = "/H" + std::to_string(hidden);
      benchmark::RegisterBenchmark((std::string(name) + "/train" + suffix).c_str(), bm_train, kind, 64, 100, 64, hidden,
                                   false)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark((std::string(name) + "/forward" + suffix).c_str(), bm_forward, kind, 64, 100, 64,
                                   hidden)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  // Scaling of an LSTM training step (H=256, B=64, T=100 unless varied): cost should grow
  // linearly in T and B. Run one case per process to read its peak RSS (bench/README.md).
  for (int64_t steps : {10, 100, 1000})
    benchmark::RegisterBenchmark(("scaling/LSTM/train/T" + std::to_string(steps)).c_str(), bm_train, Kind::lstm, 64,
                                 steps, 64, 256, true)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  for (int64_t batch : {16, 256})
    benchmark::RegisterBenchmark(("scaling/LSTM/train/B" + std::to_string(batch)).c_str(), bm_train, Kind::lstm, batch,
                                 100, 64, 256, true)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  for (int64_t hidden : {64, 128})
    benchmark::RegisterBenchmark(("scaling/LSTM/train/H" + std::to_string(hidden)).c_str(), bm_train, Kind::lstm, 64,
                                 100, 64, hidden, true)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  // The tutorial's model: one batch of 25 and the whole set of 100 sequences per iteration.
  for (int64_t batch : {25, 100})
    benchmark::RegisterBenchmark(("tiny/RNN/train/B" + std::to_string(batch)).c_str(), bm_train, Kind::rnn, batch, 10,
                                 5, 8, false)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  for (const char* mode : {"off", "anomaly", "profile"}) {
    benchmark::RegisterBenchmark(fmt::format("debug/{}/tiny/RNN/B25", mode).c_str(), bm_train_debug, Kind::rnn, 25, 10,
                                 5, 8, mode)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(fmt::format("debug/{}/LSTM/H256", mode).c_str(), bm_train_debug, Kind::lstm, 64, 100,
                                 64, 256, mode)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  return 0;
}
const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
