#include "optim/rmsprop.h"

#include "optim/update.h"

namespace seqgrad::optim {

namespace {
std::vector<std::string> rmsprop_buffers(const RMSpropOptions& o) {
  std::vector<std::string> names{"square_avg"};
  if (o.momentum > 0) names.push_back("momentum_buffer");
  if (o.centered) names.push_back("grad_avg");
  return names;
}
}  // namespace

RMSprop::RMSprop(std::vector<Tensor> params, RMSpropOptions o)
    : Optimizer("RMSprop", std::move(params), o.lr, rmsprop_buffers(o), true), options_(o) {
  check(o.alpha >= 0 && o.alpha <= 1, "alpha", o.alpha, "must be in [0, 1]");
  check(o.eps > 0, "epsilon", o.eps, "must be > 0");
  check(o.weight_decay >= 0, "weight_decay", o.weight_decay, "must be >= 0");
  check(o.momentum >= 0, "momentum", o.momentum, "must be >= 0");
}

void RMSprop::step() {
  const RMSpropOptions& o = options_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    ParamState& s = init_state(i);
    s.step += 1;
    by_dtype(p.dtype(), [&](auto tag) {
      using T = decltype(tag);
      kernels::RmspropArgs<T> a{.lr = T(lr()),
                                .alpha = T(o.alpha),
                                .one_minus_alpha = T(1 - o.alpha),
                                .eps = T(o.eps),
                                .weight_decay = T(o.weight_decay),
                                .momentum = T(o.momentum),
                                .centered = o.centered};
      // buffers: square_avg, then momentum_buffer and grad_avg when enabled (rmsprop_buffers order)
      size_t k = 1;
      T* buf = o.momentum > 0 ? s.buffers[k++].data<T>() : nullptr;
      T* gavg = o.centered ? s.buffers[k++].data<T>() : nullptr;
      kernels::rmsprop(p.data<T>(), g.data<T>(), s.buffers[0].data<T>(), gavg, buf, p.numel(), a);
    });
  }
}

}  // namespace seqgrad::optim
