// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_. Both change the
// parameters' grad() in place and skip parameters without a gradient.
//
//   loss.backward();
//   double norm = clip_grad_norm(model.parameters(), 1.0);  // the norm before clipping
//   opt.step();
//
// clip_grad_norm: total = ||(||g_1||, ..., ||g_n||)||_p over every gradient, i.e. the p-norm of
// all gradient values taken as one vector (p = inf: the largest |g|). Then, as PyTorch:
//   coef = max_norm / (total + 1e-6);  if coef < 1: g <- g * coef  for every gradient.
// A non-finite total (an inf or NaN gradient) gives coef 0 or NaN, so the gradients become 0/NaN,
// exactly what PyTorch does; with error_if_nonfinite it throws std::runtime_error instead and
// leaves the gradients untouched. The sum is taken over fixed chunks in a fixed order: the same
// bits for any number of threads. No allocation.
#pragma once

#include <limits>
#include <vector>

#include "autograd/tensor.h"

namespace seqgrad::optim {

inline constexpr double kInf = std::numeric_limits<double>::infinity();

// The p-norm of all gradients together (p > 0, or kInf), without clipping. 0 if none has a gradient.
double grad_norm(const std::vector<Tensor>& params, double norm_type = 2.0);

// Scales the gradients so their total p-norm is at most max_norm; returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                      bool error_if_nonfinite = false);

// Clamps every gradient value into [-clip_value, clip_value] (NaN stays NaN, as torch.clamp).
void clip_grad_value(const std::vector<Tensor>& params, double clip_value);

}  // namespace seqgrad::optim
