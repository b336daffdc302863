// Losses over variable-length batches: padded steps contribute nothing to the value or the
// gradient. Pair them with the recurrent layers' `lengths` argument (which already keeps padded
// steps out of the state and zeroes their outputs).
//
//   auto [out, h_n] = lstm.forward(x, {}, lengths);                    // (B, T, H)
//   Tensor loss = masked_mse_loss(head.forward(out), target, lengths); // mean over real steps only
//
// lengths has one entry in [0, T] per sequence; batch_first tensors are (B, T, ...), otherwise (T, B, ...).
#pragma once

#include <cstdint>
#include <span>

#include "autograd/tensor.h"

namespace seqgrad {

// m[b, t] = 1 if t < lengths[b] else 0: (B, T), or (T, B) when !batch_first. A constant.
Tensor sequence_mask(std::span<const int64_t> lengths, int64_t max_len, DType dtype = DType::f32,
                     bool batch_first = true);

// sum(values * mask) / (number of unmasked elements): the mean over every element of the real
// steps. values: (B, T, ...) or (T, B, ...). Throws if every length is 0.
Tensor masked_mean(const Tensor& values, std::span<const int64_t> lengths, bool batch_first = true);

// masked_mean((input - target)^2): mse_loss over the real steps.
Tensor masked_mse_loss(const Tensor& input, const Tensor& target, std::span<const int64_t> lengths,
                       bool batch_first = true);

// Cross entropy of logits (B, T, C) (or (T, B, C)) against targets (B*T class ids, in the same
// layout), averaged over the real steps. Targets at padded steps are ignored (any value).
Tensor masked_cross_entropy(const Tensor& logits, std::span<const int64_t> targets, std::span<const int64_t> lengths,
                            bool batch_first = true);

}  // namespace seqgrad
