// GRU: GRUCell (one step) and GRU (a sequence, stacked and optionally bidirectional).
//
//   GRU gru({.input_size = 5, .hidden_size = 8, .bidirectional = true});
//   auto [out, h_n] = gru.forward(x);   // x (B, T, 5) -> out (B, T, 16), h_n (2, B, 8)
//   auto [o2, h2] = gru.forward(x, h0, lengths);
//
// Exactly PyTorch's torch.nn.GRU, gate order r, z, n (rows of W_ih, W_hh, b_ih, b_hh); the reset
// gate multiplies (W_hn h + b_hn), bias included:
//   r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
//   z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
//   n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))
//   h' = (1 - z) * n + z * h
//   weight_ih_l{k}: (3H, I) for k = 0, (3H, D*H) above;  weight_hh_l{k}: (3H, H);  biases (3H);
//   "_reverse" suffix for the backward direction; all init U(-1/sqrt(H), 1/sqrt(H)).
// Shapes: x (B, T, I) batch_first (default) or (T, B, I); h0, h_n (num_layers*D, B, H);
// output (B, T, D*H) or (T, B, D*H). Time loop, dropout between layers and lengths: see recurrent.h.
#pragma once

#include <cstdint>
#include <span>

#include "layers/recurrent.h"

namespace seqgrad {

struct GRUOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 1;
  bool bias = true;
  bool batch_first = true;
  double dropout = 0;  // on the outputs of every layer but the last, in training mode
  bool bidirectional = false;
  DType dtype = DType::f32;
  uint64_t seed = 0;  // initialisation and dropout
};

class GRU : public detail::RecurrentBase {
 public:
  explicit GRU(const GRUOptions& options);
  // h0 undefined: zeros. lengths: one in [1, T] per sequence, or empty.
  RNNOutput forward(const Tensor& x, const Tensor& h0 = {}, std::span<const int64_t> lengths = {});
  const GRUOptions& options() const { return options_; }

 private:
  GRUOptions options_;
};

struct GRUCellOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  bool bias = true;
  DType dtype = DType::f32;
  uint64_t seed = 0;
};

// One step: x (B, I), h (B, H) -> h'. Parameters weight_ih (3H, I), weight_hh (3H, H), biases (3H).
class GRUCell : public detail::CellBase {
 public:
  explicit GRUCell(const GRUCellOptions& options);
  Tensor forward(const Tensor& x, const Tensor& h = {}) const;  // h undefined: zeros
  const GRUCellOptions& options() const { return options_; }

 private:
  GRUCellOptions options_;
};

}  // namespace seqgrad
