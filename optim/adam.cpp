#include "optim/adam.h"

#include <cmath>

#include "optim/update.h"

namespace seqgrad::optim {

namespace {
std::vector<std::string> adam_buffers(const AdamOptions& o) {
  if (o.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}
}  // namespace

Adam::Adam(std::vector<Tensor> params, AdamOptions o) : Adam("Adam", std::move(params), o, false) {}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions o)
    : Adam("AdamW", std::move(params),
           {.lr = o.lr, .betas = o.betas, .eps = o.eps, .weight_decay = o.weight_decay, .amsgrad = o.amsgrad}, true) {}

Adam::Adam(const char* name, std::vector<Tensor> params, AdamOptions o, bool decoupled)
    : Optimizer(name, std::move(params), o.lr, adam_buffers(o), true), options_(o), decoupled_(decoupled) {
  check(o.betas[0] >= 0 && o.betas[0] < 1, "beta parameter at index 0:", o.betas[0], "must be in [0, 1)");
  check(o.betas[1] >= 0 && o.betas[1] < 1, "beta parameter at index 1:", o.betas[1], "must be in [0, 1)");
  check(o.eps > 0, "epsilon", o.eps, "must be > 0");
  check(o.weight_decay >= 0, "weight_decay", o.weight_decay, "must be >= 0");
}

void Adam::step() {
  const AdamOptions& o = options_;
  const double lr = this->lr(), beta1 = o.betas[0], beta2 = o.betas[1];
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    ParamState& s = init_state(i);
    s.step += 1;
    // bias corrections for this parameter's step count
    const double bc1 = 1 - std::pow(beta1, double(s.step));
    const double bc2 = 1 - std::pow(beta2, double(s.step));
    by_dtype(p.dtype(), [&](auto tag) {
      using T = decltype(tag);
      kernels::AdamArgs<T> a{.decay = decoupled_ ? T(1 - lr * o.weight_decay) : T(1),
                             .weight_decay = decoupled_ ? T(0) : T(o.weight_decay),
                             .beta1 = T(beta1),
                             .one_minus_beta1 = T(1 - beta1),
                             .beta2 = T(beta2),
                             .one_minus_beta2 = T(1 - beta2),
                             .step_size = T(lr / bc1),
                             .bc2_sqrt = T(std::sqrt(bc2)),
                             .eps = T(o.eps),
                             .amsgrad = o.amsgrad};
      T* vmax = o.amsgrad ? s.buffers[2].data<T>() : nullptr;
      kernels::adam(p.data<T>(), g.data<T>(), s.buffers[0].data<T>(), s.buffers[1].data<T>(), vmax, p.numel(), a);
    });
  }
}

}  // namespace seqgrad::optim
