// Parameter initialisers: overwrite a tensor's values in place from a seeded Generator (never
// recorded on the tape). The layers call uniform_ / kaiming_uniform_ / normal_ to reproduce
// PyTorch's defaults; xavier_* and orthogonal_* are opt-in.
//
//   Generator gen(7);
//   init::xavier_uniform_(linear.weight(), gen);   // Glorot
//   init::orthogonal_recurrent_(lstm, gen);         // every weight_hh*: one orthogonal block per gate
//
// Fans of a (out, in, ...) tensor follow PyTorch: fan_in = in * receptive, fan_out = out * receptive.
#pragma once

#include <cstdint>
#include <utility>

#include "autograd/tensor.h"

namespace seqgrad {
class Module;
}

namespace seqgrad::init {

// (fan_in, fan_out); rank >= 2.
std::pair<int64_t, int64_t> fans(const Tensor& t);

void uniform_(const Tensor& t, double lo, double hi, Generator& gen);
void normal_(const Tensor& t, double mean, double stddev, Generator& gen);
// U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(const Tensor& t, Generator& gen, double gain = 1.0);
// N(0, s^2), s = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_normal_(const Tensor& t, Generator& gen, double gain = 1.0);
// U(-b, b), b = sqrt(6 / ((1 + a^2) fan_in)): PyTorch's kaiming_uniform_(mode='fan_in',
// nonlinearity='leaky_relu'). With a = sqrt(5) (Linear's default) b is 1/sqrt(fan_in).
void kaiming_uniform_(const Tensor& t, Generator& gen, double a = 0.0);
// PyTorch's orthogonal_: the tensor viewed as (rows, cols) gets orthonormal columns (rows >= cols)
// or rows (rows < cols) from the QR decomposition of a standard normal matrix (R's diagonal made
// positive, which is what Gram-Schmidt gives), times gain.
void orthogonal_(const Tensor& t, Generator& gen, double gain = 1.0);
// For a recurrent weight (G*H, H): each of the G (H, H) gate blocks is made orthogonal separately.
void orthogonal_gates_(const Tensor& t, Generator& gen, double gain = 1.0);
// orthogonal_gates_ on every parameter of m (recursively) whose own name starts with "weight_hh".
void orthogonal_recurrent_(Module& m, Generator& gen, double gain = 1.0);

}  // namespace seqgrad::init
