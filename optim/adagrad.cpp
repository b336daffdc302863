#include "optim/adagrad.h"

#include "optim/update.h"

namespace seqgrad::optim {

Adagrad::Adagrad(std::vector<Tensor> params, AdagradOptions o)
    : Optimizer("Adagrad", std::move(params), o.lr, {"sum"}, true), options_(o) {
  check(o.lr_decay >= 0, "lr_decay", o.lr_decay, "must be >= 0");
  check(o.weight_decay >= 0, "weight_decay", o.weight_decay, "must be >= 0");
  check(o.initial_accumulator_value >= 0, "initial_accumulator_value", o.initial_accumulator_value, "must be >= 0");
  check(o.eps > 0, "epsilon", o.eps, "must be > 0");
}

void Adagrad::step() {
  const AdagradOptions& o = options_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    ParamState& s = init_state(i, o.initial_accumulator_value);
    s.step += 1;
    const double clr = lr() / (1 + double(s.step - 1) * o.lr_decay);
    by_dtype(p.dtype(), [&](auto tag) {
      using T = decltype(tag);
      kernels::AdagradArgs<T> a{.clr = T(clr), .eps = T(o.eps), .weight_decay = T(o.weight_decay)};
      kernels::adagrad(p.data<T>(), g.data<T>(), s.buffers[0].data<T>(), p.numel(), a);
    });
  }
}

}  // namespace seqgrad::optim
