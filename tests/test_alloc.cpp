// Heap allocations in steady state, counted by replacing the global operator new (for this test
// binary) with a counting forwarder to malloc: after an optimizer's first step, step(),
// clip_grad_norm, clip_grad_value and the schedulers' step() allocate nothing; a recurrent
// training step allocates the same few times whatever its length, so none per recorded op. Only
// counted while a Counting guard is alive on the calling thread, so the replacement changes
// nothing for other tests.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>

#include "autograd/seqgrad.h"
#include "layers/layers.h"
#include "optim/optim.h"
#include "layers/quantize.h"

namespace {
thread_local bool g_counting = false;
thread_local int64_t g_allocations = 0;

struct Counting {
  Counting() {
    g_allocations = 0;
    g_counting = true;
  }
  ~Counting() { g_counting = false; }
  int64_t count() const { return g_allocations; }
};
}  // namespace

// Every unaligned variant is replaced, so new/delete pairs always meet (AddressSanitizer checks
// that); the aligned variants keep their default pairing.
namespace {
void* counted_malloc(std::size_t n) {
  if (g_counting) ++g_allocations;
  return std::malloc(n ? n : 1);
}
}  // namespace
void* operator new(std::size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

using namespace seqgrad;
using namespace seqgrad::optim;

TEST_CASE("optimizer steps, clipping and schedulers allocate nothing after the first step", "[optim][alloc]") {
  using Make = std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>;
  std::vector<std::pair<const char*, Make>> makers{
      {"SGD nesterov",
       [](auto ps) { return std::make_unique<SGD>(ps, SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true}); }},
      {"Adam amsgrad",
       [](auto ps) { return std::make_unique<Adam>(ps, AdamOptions{.weight_decay = 0.1, .amsgrad = true}); }},
      {"AdamW", [](auto ps) { return std::make_unique<AdamW>(ps); }},
      {"RMSprop centered momentum",
       [](auto ps) { return std::make_unique<RMSprop>(ps, RMSpropOptions{.momentum = 0.5, .centered = true}); }},
      {"Adagrad", [](auto ps) { return std::make_unique<Adagrad>(ps, AdagradOptions{.lr_decay = 0.1}); }},
  };
  for (size_t k = 0; k < makers.size(); ++k) {
    auto& [name, make] = makers[k];
    INFO(name);
    Generator gen(1);
    // float32 and float64; for one optimizer also a parameter long enough for the threaded path
    // (> 1 << 16), only one because OpenMP regions are slow on a busy 2-core CI machine.
    std::vector<Tensor> ps{uniform({5, 7}, -1, 1, gen).requires_grad_(),
                           uniform({13}, -1, 1, gen, DType::f64).requires_grad_()};
    if (k == 1) ps.push_back(uniform({70001}, -1, 1, gen, DType::f64).requires_grad_());
    for (auto& p : ps) p.set_grad(uniform(p.shape(), -1, 1, gen, p.dtype()));
    auto opt = make(ps);
    StepLR sched(*opt, {.step_size = 2});
    opt->step();  // allocates the state
    Counting counting;
    for (int i = 0; i < 2; ++i) {
      clip_grad_norm(ps, 0.5);
      clip_grad_value(ps, 0.01);
      opt->step();
      sched.step();
    }
    opt->zero_grad(false);
    CHECK(counting.count() == 0);
  }
}

TEST_CASE("a recurrent training step allocates no more for more steps: none per op", "[layers][alloc]") {
  // The tutorial's model, at two sequence lengths: tensors and their buffers come from pools, so
  // what is left is per forward (the packed W_hh, the layer's step lists), not per op.
  auto steady_allocations = [](int64_t steps) {
    Generator gen(1);
    Tensor x = uniform({10, steps, 5}, -1, 1, gen), y = uniform({10, steps, 1}, 0, 1, gen);
    RNN rnn({.input_size = 5, .hidden_size = 8});
    Linear head({.in_features = 8, .out_features = 1});
    auto params = rnn.parameters();
    for (auto& p : head.parameters()) params.push_back(p);
    Adam opt(params, {.lr = 0.01});
    int64_t count = 0;
    for (int it = 0; it < 4; ++it) {  // the pools fill during the first iterations
      Counting counting;
      binary_cross_entropy_with_logits(head.forward(rnn.forward(x).output), y).backward();
      opt.step();
      opt.zero_grad();
      count = counting.count();
    }
    return count;
  };
  const int64_t short_run = steady_allocations(10), long_run = steady_allocations(100);
  INFO("10 steps: " << short_run << " allocations, 100 steps: " << long_run);
  CHECK(long_run == short_run);
  CHECK(short_run < 20);
}

TEST_CASE("streaming steps (float and int8) allocate nothing after the first", "[layers][alloc][stream]") {
  Generator gen(2);
  LSTM lstm({.input_size = 16, .hidden_size = 64, .num_layers = 2});
  GRU gru({.input_size = 16, .hidden_size = 64});
  RNN rnn({.input_size = 16, .hidden_size = 64});
  GRU int8({.input_size = 16, .hidden_size = 64, .num_layers = 2});
  quantize_dynamic(int8);
  Tensor x = uniform({1, 16}, -1, 1, gen);
  for (detail::RecurrentBase* layer : {static_cast<detail::RecurrentBase*>(&lstm), static_cast<detail::RecurrentBase*>(&gru),
                                       static_cast<detail::RecurrentBase*>(&rnn), static_cast<detail::RecurrentBase*>(&int8)}) {
    StreamState s = layer->initial_state(1);
    layer->step(x, s);  // the GEMM's per-thread buffers
    Counting counting;
    for (int t = 0; t < 50; ++t) layer->step(x, s);
    CHECK(counting.count() == 0);
  }
}
