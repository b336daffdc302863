#include "layers/activation.h"

#include <cmath>
#include <numbers>

namespace seqgrad {

Tensor leaky_relu(const Tensor& x, double negative_slope) {
  return add(mul(x, negative_slope), mul(relu(x), 1.0 - negative_slope));
}

Tensor silu(const Tensor& x) { return mul(x, sigmoid(x)); }

Tensor gelu(const Tensor& x) {
  const double c = std::sqrt(2.0 / std::numbers::pi);
  Tensor inner = mul(add(x, mul(pow(x, 3.0), 0.044715)), c);
  return mul(mul(x, add(tanh(inner), 1.0)), 0.5);
}

}  // namespace seqgrad
