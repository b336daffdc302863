// RMSprop, exactly torch.optim.RMSprop. For each parameter p with gradient g:
//
//   g <- g + weight_decay * p                        (if weight_decay != 0)
//   v <- alpha * v + (1 - alpha) * g^2               ("square_avg")
//   v~ <- v
//   if centered:
//     g_avg <- alpha * g_avg + (1 - alpha) * g       ("grad_avg")
//     v~ <- v - g_avg^2
//   if momentum > 0:
//     b <- momentum * b + g / (sqrt(v~) + eps)       ("momentum_buffer", starts at 0)
//     p <- p - lr * b
//   else:
//     p <- p - lr * g / (sqrt(v~) + eps)
//
// eps is added after the square root (TensorFlow adds it inside). State: "step", "square_avg",
// plus "momentum_buffer" when momentum > 0 and "grad_avg" when centered.
//
//   RMSprop opt(model.parameters(), {.lr = 1e-2, .alpha = 0.99, .centered = true});
#pragma once

#include "optim/optimizer.h"

namespace seqgrad::optim {

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;  // in [0, 1]
  double eps = 1e-8;    // > 0
  double weight_decay = 0;
  double momentum = 0;
  bool centered = false;
};

class RMSprop : public Optimizer {
 public:
  explicit RMSprop(std::vector<Tensor> params, RMSpropOptions options = {});
  void step() override;
  const RMSpropOptions& options() const { return options_; }

 private:
  RMSpropOptions options_;
};

}  // namespace seqgrad::optim
