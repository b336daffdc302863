// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay,
// exactly torch.optim.SGD. For each parameter p with gradient g, at step t:
//
//   g <- g + weight_decay * p                        (if weight_decay != 0)
//   if momentum != 0:
//     b <- g                                         (t = 1: no dampening on the first step)
//     b <- momentum * b + (1 - dampening) * g        (t > 1)
//     g <- g + momentum * b   if nesterov, else  g <- b
//   p <- p - lr * g
//
// State: "momentum_buffer" (b), only when momentum != 0. No step count.
//
//   SGD opt(model.parameters(), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
#pragma once

#include "optim/optimizer.h"

namespace seqgrad::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;  // requires momentum > 0 and dampening == 0
};

class SGD : public Optimizer {
 public:
  explicit SGD(std::vector<Tensor> params, SGDOptions options = {});
  void step() override;
  const SGDOptions& options() const { return options_; }

 private:
  SGDOptions options_;
};

}  // namespace seqgrad::optim
