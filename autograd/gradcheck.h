// Numerical gradient checking: compares the tape's backward with float64 central differences.
//
//   auto r = gradcheck([](const std::vector<Tensor>& in) { return tanh(matmul(in[0], in[1])); },
//                      {uniform({5, 7}, -1, 1, gen, DType::f64).requires_grad_(), ...});
//   REQUIRE(r.ok);  // r.summary() says which input and element was worst
//
// The function's output y (any shape) is reduced to L = sum(y * w) with fixed random weights w,
// so every output element takes part; dL/dinput from backward() is compared element by element
// with (L(x + eps) - L(x - eps)) / 2 eps for every input that requires grad.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.h"

namespace seqgrad {

struct GradcheckOptions {
  double eps = 1e-6;
  // An element fails when |analytic - numeric| / max(1, |numeric|) exceeds this: relative for
  // large gradients, absolute for gradients near zero.
  double tolerance = 1e-6;
  uint64_t seed = 0;  // for the projection weights w
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;
  double max_rel_error = 0;
  std::string worst;  // "input 1 element 7: analytic ..., numeric ..."
  std::string summary() const;
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Inputs must be float64 leaves; those with requires_grad are checked. Throws std::invalid_argument
// otherwise, or if no input requires grad.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt = {});

}  // namespace seqgrad
