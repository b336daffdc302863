// Adam and AdamW, exactly torch.optim.Adam / torch.optim.AdamW. For each parameter p with
// gradient g, at the parameter's step t = 1, 2, ...:
//
//   p <- p * (1 - lr * weight_decay)                 (AdamW only: decoupled weight decay)
//   g <- g + weight_decay * p                        (Adam only, if weight_decay != 0: L2 penalty)
//   m <- beta1 * m + (1 - beta1) * g                 ("exp_avg")
//   v <- beta2 * v + (1 - beta2) * g^2               ("exp_avg_sq")
//   v_max <- max(v_max, v); use v_max for v below   (amsgrad: "max_exp_avg_sq")
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// The last line is PyTorch's arrangement of lr * m_hat / (sqrt(v_hat) + eps): eps is added after
// the bias correction of sqrt(v). State: "step" (t, per parameter), "exp_avg", "exp_avg_sq", and
// "max_exp_avg_sq" with amsgrad.
//
//   Adam opt(model.parameters(), {.lr = 1e-3, .betas = {0.9, 0.999}});
//   AdamW opt(model.parameters(), {.lr = 1e-3, .weight_decay = 1e-2});
#pragma once

#include <array>

#include "optim/optimizer.h"

namespace seqgrad::optim {

struct AdamOptions {
  double lr = 1e-3;
  std::array<double, 2> betas{0.9, 0.999};  // each in [0, 1)
  double eps = 1e-8;                        // > 0
  double weight_decay = 0;                  // L2 penalty added to the gradient
  bool amsgrad = false;
};

// AdamW's options differ from Adam's only in the default weight_decay, which is decoupled.
struct AdamWOptions {
  double lr = 1e-3;
  std::array<double, 2> betas{0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 1e-2;  // p *= 1 - lr * weight_decay before each update
  bool amsgrad = false;
};

class Adam : public Optimizer {
 public:
  explicit Adam(std::vector<Tensor> params, AdamOptions options = {});
  void step() override;
  const AdamOptions& options() const { return options_; }

 protected:
  Adam(const char* name, std::vector<Tensor> params, AdamOptions options, bool decoupled);

 private:
  AdamOptions options_;
  bool decoupled_;  // AdamW
};

class AdamW : public Adam {
 public:
  explicit AdamW(std::vector<Tensor> params, AdamWOptions options = {});
};

}  // namespace seqgrad::optim
