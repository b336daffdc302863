#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/ops.h"
#include "autograd/tape.h"

namespace seqgrad {

std::string GradcheckResult::summary() const {
  return fmt::format("{}: max abs error {:.3e}, max rel error {:.3e}{}{}", ok ? "ok" : "FAILED", max_abs_error,
                     max_rel_error, worst.empty() ? "" : "; worst at ", worst);
}

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt) {
  bool any = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined()) continue;
    if (x.dtype() != DType::f64 || !x.is_leaf())
      throw std::invalid_argument(fmt::format("gradcheck: input {} must be a float64 leaf, got {} {}", i, x.dtype(), x.shape()));
    any = any || x.requires_grad();
  }
  if (!any) throw std::invalid_argument("gradcheck: no input requires grad");

  for (const Tensor& x : inputs)
    if (x.defined()) const_cast<Tensor&>(x).zero_grad();
  Tensor y = f(inputs);
  Generator gen(opt.seed);
  Tensor w = uniform(y.shape(), 0.5, 1.5, gen, DType::f64);
  auto objective = [&] { return sum(mul(f(inputs), w)).item(); };
  sum(mul(y, w)).backward();

  GradcheckResult r;
  NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.defined() || !x.requires_grad()) continue;
    Tensor g = x.grad();
    double* px = x.data<double>();
    for (int64_t e = 0; e < x.numel(); ++e) {
      double orig = px[e];
      px[e] = orig + opt.eps;
      double up = objective();
      px[e] = orig - opt.eps;
      double down = objective();
      px[e] = orig;
      double numeric = (up - down) / (2 * opt.eps);
      double analytic = g.defined() ? g.data<double>()[e] : 0.0;
      double abs_err = std::abs(analytic - numeric);
      double rel_err = abs_err / std::max(1.0, std::abs(numeric));
      r.max_abs_error = std::max(r.max_abs_error, abs_err);
      if (rel_err > r.max_rel_error || std::isnan(rel_err)) {
        r.max_rel_error = std::isnan(rel_err) ? INFINITY : rel_err;
        r.worst = fmt::format("input {} element {}: analytic {:.10g}, numeric {:.10g}", i, e, analytic, numeric);
      }
    }
  }
  r.ok = r.max_rel_error <= opt.tolerance;
  return r;
}

}  // namespace seqgrad
