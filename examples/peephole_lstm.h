// A custom recurrent cell written only from public ops: the peephole LSTM of Gers & Schmidhuber
// (2000), where the gates also look at the cell state. This is how to write your own cell: the
// time loop calls ordinary ops, the unrolled steps land on the tape, and backward() does BPTT.
//
//   i  = sigmoid(W_i x + U_i h + p_i * c + b_i)
//   f  = sigmoid(W_f x + U_f h + p_f * c + b_f)
//   g  = tanh   (W_g x + U_g h + b_g)
//   c' = f * c + i * g
//   o  = sigmoid(W_o x + U_o h + p_o * c' + b_o)
//   h' = o * tanh(c')
//
// Parameters: weight_ih (4H, I), weight_hh (4H, H), bias (4H), peephole (3, H) holding p_i, p_f, p_o.
// bench/bench_compare.cpp times it against the fused LSTM and PyTorch; tests gradcheck it.
#pragma once

#include <cmath>
#include <vector>

#include "autograd/seqgrad.h"
#include "layers/init.h"
#include "layers/module.h"

namespace seqgrad::examples {

class PeepholeLSTM : public Module {
 public:
  PeepholeLSTM(int64_t input_size, int64_t hidden_size, uint64_t seed = 0, DType dtype = DType::f32)
      : hidden_(hidden_size) {
    Generator gen(seed);
    const double k = 1 / std::sqrt(double(hidden_size));
    auto param = [&](const char* name, Shape shape) {
      Tensor t = zeros(std::move(shape), dtype);
      init::uniform_(t, -k, k, gen);
      return register_parameter(name, t);
    };
    w_ih_ = param("weight_ih", {4 * hidden_size, input_size});
    w_hh_ = param("weight_hh", {4 * hidden_size, hidden_size});
    bias_ = param("bias", {4 * hidden_size});
    peep_ = param("peephole", {3, hidden_size});
  }

  // x (B, T, I) -> hidden states (B, T, H), starting from h = c = 0.
  Tensor forward(const Tensor& x) const {
    const int64_t batch = x.shape()[0], steps = x.shape()[1], H = hidden_;
    // The input projection of every step in one product, time-major (T, B, 4H) so that a step's
    // rows are one block rather than B rows scattered over xw; only h W_hh^T is left in the loop.
    Tensor xw = linear(transpose(x, 0, 1), w_ih_, bias_);
    PackedWeight w_hh(w_hh_);  // packed once here rather than by every step's product
    Tensor p_i = select(peep_, 0, 0), p_f = select(peep_, 0, 1), p_o = select(peep_, 0, 2);
    Tensor h = zeros({batch, H}, x.dtype()), c = zeros({batch, H}, x.dtype());
    std::vector<Tensor> hs;
    hs.reserve(size_t(steps));
    for (int64_t t = 0; t < steps; ++t) {
      Tensor gates = select(xw, 0, t) + linear(h, w_hh);
      Tensor i = sigmoid(slice(gates, 1, 0, H) + p_i * c);
      Tensor f = sigmoid(slice(gates, 1, H, 2 * H) + p_f * c);
      Tensor g = tanh(slice(gates, 1, 2 * H, 3 * H));
      c = f * c + i * g;
      Tensor o = sigmoid(slice(gates, 1, 3 * H, 4 * H) + p_o * c);
      h = o * tanh(c);
      hs.push_back(h);
    }
    return stack(hs, 1);
  }

 private:
  int64_t hidden_;
  Tensor w_ih_, w_hh_, bias_, peep_;
};

}  // namespace seqgrad::examples
