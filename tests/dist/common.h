// The model, data and the two training loops the distributed tests compare: data-parallel over
// the ranks (each rank its micro-batch, gradients averaged by dist::allreduce_gradients) and the
// one-process reference (the same micro-batches in rank order, gradients added then divided).
#pragma once

#include <cstring>

#include "autograd/seqgrad.h"
#include "dist/dist.h"
#include "layers/layers.h"
#include "optim/optim.h"

namespace seqgrad::dist_test {

struct Net : Module {
  explicit Net(DType dtype, uint64_t seed = 1, int64_t hidden = 8) {
    lstm = register_module("lstm", std::make_shared<LSTM>(LSTMOptions{.input_size = 3, .hidden_size = hidden, .seed = seed}));
    head = register_module("head", std::make_shared<Linear>(LinearOptions{.in_features = hidden, .out_features = 2, .seed = seed + 1}));
    to(dtype);
  }
  Tensor forward(const Tensor& x) { return head->forward(lstm->forward(x).output); }
  std::shared_ptr<LSTM> lstm;
  std::shared_ptr<Linear> head;
};

// Step s's global batch (world * per_rank sequences x 6 steps) and rank r's slice of it.
inline std::pair<Tensor, Tensor> micro_batch(int64_t step, int r, int64_t per_rank, int world, DType dtype) {
  Generator gen(uint64_t(1000 + step));
  Tensor x = normal({world * per_rank, 6, 3}, 0, 1, gen, dtype), y = normal({world * per_rank, 6, 2}, 0, 1, gen, dtype);
  if (r < 0) return {x, y};  // the full batch
  return {x.slice(0, r * per_rank, (r + 1) * per_rank), y.slice(0, r * per_rank, (r + 1) * per_rank)};
}

inline void train_parallel(Net& net, int64_t steps, int64_t per_rank, DType dtype, size_t bucket_bytes = size_t(16) << 20) {
  optim::Adam opt(net.parameters(), {.lr = 0.01});
  for (int64_t s = 0; s < steps; ++s) {
    auto [x, y] = micro_batch(s, dist::rank(), per_rank, dist::world_size(), dtype);
    mse_loss(net.forward(x), y).backward();
    dist::allreduce_gradients(net.parameters(), {.bucket_bytes = bucket_bytes});
    opt.step();
    opt.zero_grad();
  }
}

// g = (((g_0 + g_1) + g_2) + ...) / world, in the parameter's dtype.
template <class T>
void add_or_divide(Tensor& acc, const Tensor& g, int r, int world) {
  T* a = acc.data<T>();
  const T* b = g.data<T>();
  for (int64_t i = 0; i < acc.numel(); ++i) a[i] = r == 0 ? b[i] : r < world ? a[i] + b[i] : a[i] / T(world);
}

inline void train_reference(Net& net, int world, int64_t steps, int64_t per_rank, DType dtype) {
  std::vector<Tensor> params = net.parameters();
  optim::Adam opt(params, {.lr = 0.01});
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<Tensor> acc(params.size());
    for (int r = 0; r <= world; ++r) {
      if (r < world) {
        opt.zero_grad();
        auto [x, y] = micro_batch(s, r, per_rank, world, dtype);
        mse_loss(net.forward(x), y).backward();
      }
      for (size_t i = 0; i < params.size(); ++i) {
        if (r == 0) acc[i] = Tensor::empty(params[i].shape(), dtype);
        if (dtype == DType::f32) add_or_divide<float>(acc[i], r < world ? params[i].grad() : acc[i], r, world);
        else add_or_divide<double>(acc[i], r < world ? params[i].grad() : acc[i], r, world);
      }
    }
    for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(acc[i]);
    opt.step();
    opt.zero_grad();
  }
}

inline bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw(), b.raw(), size_t(a.numel()) * dtype_size(a.dtype())) == 0;
}

}  // namespace seqgrad::dist_test
