// Losses: mse, binary cross-entropy with logits, nll and cross-entropy.
// Dimension legend and conventions: autograd/ops_internal.h.
#include "autograd/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "autograd/ops_internal.h"

namespace seqgrad {
using namespace detail;

Tensor mse_loss(const Tensor& input, const Tensor& target) {
  check_defined("mse_loss", input, "input");
  check_defined("mse_loss", target, "target");
  if (input.shape() != target.shape())
    throw std::invalid_argument(fmt::format("mse_loss: input is {} but target is {}", input.shape(), target.shape()));
  return mean(pow(sub(input, target), 2.0));
}

Tensor bce_with_logits_elementwise(const Tensor& logits, const Tensor& target) {
  check_defined("bce_with_logits", logits, "logits");
  check_defined("bce_with_logits", target, "target");
  check_same_dtype("bce_with_logits", logits, target);
  if (logits.shape() != target.shape())
    throw std::invalid_argument(
        fmt::format("bce_with_logits: logits are {} but targets are {}", logits.shape(), target.shape()));
  Tensor y = Tensor::empty(logits.shape(), logits.dtype());
  by_dtype(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    k::bce_logits(ptr<T>(y), ptr<T>(logits), ptr<T>(target), y.numel());
  });
  if (recording("bce_with_logits", {&logits, &target}, y))
    record({.op = Op::BceWithLogits, .in = {logits, target}, .out = y});
  return y;
}

namespace detail {
void BceWithLogits_bwd(const Node& n) {
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *x = ptr<T>(n.in[0]), *t = ptr<T>(n.in[1]), *g = ptr<T>(n.out.grad());
    int64_t N = n.out.numel();
    if (n.needs_grad[0]) k::bce_logits_bwd(ptr<T>(grad_of(n.in[0])), x, t, g, N);
    if (n.needs_grad[1]) {
      T* dt = ptr<T>(grad_of(n.in[1]));
      for (int64_t i = 0; i < N; ++i) dt[i] -= g[i] * x[i];
    }
  });
}
}  // namespace detail

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target) {
  return mean(bce_with_logits_elementwise(logits, target));
}

namespace detail {
Tensor index_tensor(const char* op, std::span<const int64_t> idx, int64_t limit) {
  Tensor t = Tensor::empty(Shape{int64_t(idx.size())}, DType::f64);
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] < 0 || idx[i] >= limit)
      throw std::invalid_argument(fmt::format("{}: index {} at position {} is out of range [0, {})", op, idx[i], i, limit));
    t.data<double>()[i] = double(idx[i]);
  }
  return t;
}
}  // namespace detail

Tensor nll_loss(const Tensor& logp, std::span<const int64_t> target) {
  check_defined("nll_loss", logp, "input");
  if (logp.rank() != 2 || int64_t(target.size()) != logp.size(0) || logp.size(0) == 0)
    throw std::invalid_argument(fmt::format("nll_loss: input is {} with {} targets; expected (N, C) with N >= 1 targets",
                                            logp.shape(), target.size()));
  int64_t N = logp.size(0), C = logp.size(1);
  Tensor saved = index_tensor("nll_loss", target, C);
  Tensor y = Tensor::empty(Shape{}, logp.dtype());
  by_dtype(logp.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T s = 0;
    for (int64_t i = 0; i < N; ++i) s += ptr<T>(logp)[i * C + target[i]];
    *ptr<T>(y) = -s / T(N);
  });
  if (recording("nll_loss", {&logp}, y)) record({.op = Op::NllLoss, .in = {logp}, .out = y, .saved = saved});
  return y;
}

namespace detail {
void NllLoss_bwd(const Node& n) {
  int64_t N = n.in[0].size(0), C = n.in[0].size(1);
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* d = ptr<T>(grad_of(n.in[0]));
    T g = *ptr<T>(n.out.grad()) / T(N);
    for (int64_t i = 0; i < N; ++i) d[i * C + int64_t(n.saved.data<double>()[i])] -= g;
  });
}
}  // namespace detail

Tensor cross_entropy(const Tensor& logits, std::span<const int64_t> target) {
  check_defined("cross_entropy", logits, "logits");
  if (logits.rank() != 2)
    throw std::invalid_argument(fmt::format("cross_entropy: logits are {}; expected (N, C)", logits.shape()));
  return nll_loss(log_softmax(logits, 1), target);
}

}  // namespace seqgrad
