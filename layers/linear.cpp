#include "layers/linear.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "autograd/debug.h"
#include "autograd/ops.h"
#include "layers/init.h"
#include "layers/quantize.h"

namespace seqgrad {

Linear::Linear(const LinearOptions& o) : options_(o) {
  if (o.in_features <= 0 || o.out_features <= 0)
    throw std::invalid_argument(fmt::format("Linear: in_features and out_features must be positive, got {} and {}",
                                            o.in_features, o.out_features));
  Generator gen(o.seed);
  weight_ = register_parameter("weight", Tensor::empty({o.out_features, o.in_features}, o.dtype));
  init::kaiming_uniform_(weight_, gen, std::sqrt(5.0));
  if (o.bias) {
    double b = 1.0 / std::sqrt(double(o.in_features));
    bias_ = register_parameter("bias", uniform({o.out_features}, -b, b, gen, o.dtype));
  }
}

Tensor Linear::forward(const Tensor& x) const {
  if (!x.defined()) throw std::invalid_argument("Linear: input is an undefined tensor");
  if (x.rank() < 1 || x.size(-1) != options_.in_features)
    throw std::invalid_argument(fmt::format("Linear: input must have shape (..., {}) (in_features = {}), got {}",
                                            options_.in_features, options_.in_features, x.shape()));
  if (x.dtype() != weight_.dtype())
    throw std::invalid_argument(fmt::format("Linear: input is {} but the parameters are {}; convert one with to()",
                                            x.dtype(), weight_.dtype()));
  Scope scope(scope_name("Linear"));
  return int8_ ? quant::linear_forward(*int8_, x, weight_) : linear(x, weight_, bias_);
}

}  // namespace seqgrad
