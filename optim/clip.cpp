#include "optim/clip.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "optim/optimizer.h"
#include "optim/update.h"

namespace seqgrad::optim {

double grad_norm(const std::vector<Tensor>& params, double p) {
  if (!(p > 0)) throw std::invalid_argument(fmt::format("grad_norm: norm_type {} must be > 0 (or inf)", p));
  // Per-gradient partials in the gradient's precision, combined across parameters in double.
  double total = 0;
  for (const Tensor& param : params) {
    Tensor g = param.defined() ? param.grad() : Tensor();
    if (!g.defined()) continue;
    double part = 0;
    by_dtype(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      part = double(kernels::norm_reduce(g.data<T>(), g.numel(), p));
    });
    if (std::isinf(p))
      total = (part > total || std::isnan(part)) ? part : total;
    else
      total += part;
  }
  if (std::isinf(p) || p == 1) return total;
  return p == 2 ? std::sqrt(total) : std::pow(total, 1.0 / p);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double p, bool error_if_nonfinite) {
  if (!(max_norm >= 0)) throw std::invalid_argument(fmt::format("clip_grad_norm: max_norm {} must be >= 0", max_norm));
  double total = grad_norm(params, p);
  if (!std::isfinite(total) && error_if_nonfinite)
    throw std::runtime_error(fmt::format(
        "clip_grad_norm: the total norm of order {} of the gradients is non-finite ({}), so it cannot be clipped; "
        "pass error_if_nonfinite = false to scale the gradients by the non-finite norm anyway",
        p, total));
  double coef = max_norm / (total + 1e-6);
  if (coef < 1 || std::isnan(coef)) {
    for (const Tensor& param : params) {
      Tensor g = param.defined() ? param.grad() : Tensor();
      if (!g.defined()) continue;
      by_dtype(g.dtype(), [&](auto tag) {
        using T = decltype(tag);
        kernels::scale(g.data<T>(), T(coef), g.numel());
      });
    }
  }
  return total;
}

void clip_grad_value(const std::vector<Tensor>& params, double clip_value) {
  if (!(clip_value >= 0))
    throw std::invalid_argument(fmt::format("clip_grad_value: clip_value {} must be >= 0", clip_value));
  for (const Tensor& param : params) {
    Tensor g = param.defined() ? param.grad() : Tensor();
    if (!g.defined()) continue;
    by_dtype(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      kernels::clamp(g.data<T>(), T(-clip_value), T(clip_value), g.numel());
    });
  }
}

}  // namespace seqgrad::optim
