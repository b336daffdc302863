// Activations as functions and as parameterless modules (for Sequential). tanh, sigmoid and relu
// are tape primitives (autograd/ops.h); the others are compositions of primitives, so they need
// no backward of their own.
//
//   Tensor y = gelu(x);                               // function
//   Sequential mlp(lin1, std::make_shared<GELU>(), lin2);  // module
//
//   leaky_relu(x) = max(0, x) + slope * min(0, x)    = slope * x + (1 - slope) * relu(x)
//   silu(x)       = x * sigmoid(x)
//   gelu(x)       = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (PyTorch's GELU(approximate='tanh'))
#pragma once

#include "autograd/ops.h"
#include "layers/module.h"

namespace seqgrad {

Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);

class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) const { return tanh(x); }
};
class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) const { return sigmoid(x); }
};
class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) const { return relu(x); }
};
class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : slope_(negative_slope) {}
  Tensor forward(const Tensor& x) const { return leaky_relu(x, slope_); }

 private:
  double slope_;
};
class SiLU : public Module {
 public:
  Tensor forward(const Tensor& x) const { return silu(x); }
};
class GELU : public Module {
 public:
  Tensor forward(const Tensor& x) const { return gelu(x); }
};

}  // namespace seqgrad
