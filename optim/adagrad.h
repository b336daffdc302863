// Adagrad, exactly torch.optim.Adagrad. For each parameter p with gradient g, at its step t:
//
//   lr~ <- lr / (1 + (t - 1) * lr_decay)
//   g <- g + weight_decay * p                        (if weight_decay != 0)
//   s <- s + g^2                                     ("sum", starts at initial_accumulator_value)
//   p <- p - lr~ * g / (sqrt(s) + eps)
//
// State: "step", "sum".
//
//   Adagrad opt(model.parameters(), {.lr = 0.1, .initial_accumulator_value = 0.1});
#pragma once

#include "optim/optimizer.h"

namespace seqgrad::optim {

struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0;
  double weight_decay = 0;
  double initial_accumulator_value = 0;
  double eps = 1e-10;  // > 0
};

class Adagrad : public Optimizer {
 public:
  explicit Adagrad(std::vector<Tensor> params, AdagradOptions options = {});
  void step() override;
  const AdagradOptions& options() const { return options_; }

 private:
  AdagradOptions options_;
};

}  // namespace seqgrad::optim
