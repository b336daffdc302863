#include "optim/sgd.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "optim/update.h"

namespace seqgrad::optim {

namespace {
std::vector<std::string> sgd_buffers(const SGDOptions& o) {
  if (o.momentum != 0) return {"momentum_buffer"};
  return {};
}
}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions o)
    : Optimizer("SGD", std::move(params), o.lr, sgd_buffers(o), false), options_(o) {
  check(o.momentum >= 0, "momentum", o.momentum, "must be >= 0");
  check(std::isfinite(o.dampening), "dampening", o.dampening, "must be finite");
  check(o.weight_decay >= 0, "weight_decay", o.weight_decay, "must be >= 0");
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    throw std::invalid_argument(
        fmt::format("SGD: nesterov momentum requires momentum > 0 and dampening == 0 (got momentum {}, dampening {})",
                    o.momentum, o.dampening));
}

void SGD::step() {
  const SGDOptions& o = options_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    bool first = !state_[i].started;
    ParamState& s = init_state(i);
    by_dtype(p.dtype(), [&](auto tag) {
      using T = decltype(tag);
      kernels::SgdArgs<T> a{.lr = T(lr()),
                            .weight_decay = T(o.weight_decay),
                            .momentum = T(o.momentum),
                            .one_minus_dampening = T(1 - o.dampening),
                            .nesterov = o.nesterov,
                            .first = first};
      T* buf = o.momentum != 0 ? s.buffers[0].data<T>() : nullptr;
      kernels::sgd(p.data<T>(), g.data<T>(), buf, p.numel(), a);
    });
  }
}

}  // namespace seqgrad::optim
