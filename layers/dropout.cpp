#include "layers/dropout.h"

#include <stdexcept>

#include <fmt/format.h>

#include "autograd/ops.h"

namespace seqgrad {

namespace {
void check_p(const char* who, double p) {
  if (!(p >= 0.0 && p <= 1.0))
    throw std::invalid_argument(fmt::format("{}: probability p must be in [0, 1], got {}", who, p));
}
}  // namespace

Tensor dropout(const Tensor& x, double p, Generator& gen, bool training) {
  check_p("dropout", p);
  if (!x.defined()) throw std::invalid_argument("dropout: input is an undefined tensor");
  if (!training || p == 0.0) return x;
  // The mask holds 0 or 1/(1-p) (0 everywhere when p == 1); it is a constant: no gradient.
  double keep = p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
  Tensor mask = Tensor::empty(x.shape(), x.dtype());
  auto fill = [&](auto* m) {
    for (int64_t i = 0, n = mask.numel(); i < n; ++i) m[i] = gen.uniform() < p ? 0 : keep;
  };
  if (x.dtype() == DType::f32)
    fill(mask.data<float>());
  else
    fill(mask.data<double>());
  return mul(x, mask);
}

Dropout::Dropout(const DropoutOptions& o) : options_(o), gen_(register_generator("generator", o.seed)) {
  check_p("Dropout", o.p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, options_.p, *gen_, is_training()); }

}  // namespace seqgrad
