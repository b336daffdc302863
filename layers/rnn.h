// Elman RNN: RNNCell (one step) and RNN (a sequence, stacked and optionally bidirectional).
//
//   RNN rnn({.input_size = 5, .hidden_size = 8});
//   auto [out, h_n] = rnn.forward(x);   // x (B, T, 5) -> out (B, T, 8), h_n (1, B, 8)
//   auto [out2, h2] = rnn.forward(x, h0, lengths);   // initial state, variable-length batch
//
// Exactly PyTorch's torch.nn.RNN:
//   h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   act = tanh or relu
//   weight_ih_l{k}: (H, I) for k = 0, (H, D*H) above;  weight_hh_l{k}: (H, H);  bias_ih_l{k}, bias_hh_l{k}: (H)
//   the reverse direction's parameters end in "_reverse"; all init U(-1/sqrt(H), 1/sqrt(H)).
// Shapes: x (B, T, I) batch_first (default) or (T, B, I); h0 (num_layers*D, B, H), D = 2 if
// bidirectional; output (B, T, D*H) or (T, B, D*H) with the forward direction in [..., :H];
// h_n (num_layers*D, B, H). Time loop, dropout between layers and lengths: see recurrent.h.
#pragma once

#include <cstdint>
#include <span>

#include "layers/recurrent.h"

namespace seqgrad {

enum class Nonlinearity : uint8_t { tanh, relu };

struct RNNOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 1;
  Nonlinearity nonlinearity = Nonlinearity::tanh;
  bool bias = true;
  bool batch_first = true;
  double dropout = 0;  // on the outputs of every layer but the last, in training mode
  bool bidirectional = false;
  DType dtype = DType::f32;
  uint64_t seed = 0;  // initialisation and dropout
};

class RNN : public detail::RecurrentBase {
 public:
  explicit RNN(const RNNOptions& options);
  // h0 undefined: zeros. lengths empty: every sequence has T steps; else one length in [1, T] per sequence.
  RNNOutput forward(const Tensor& x, const Tensor& h0 = {}, std::span<const int64_t> lengths = {});
  const RNNOptions& options() const { return options_; }

 private:
  RNNOptions options_;
};

struct RNNCellOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  bool bias = true;
  Nonlinearity nonlinearity = Nonlinearity::tanh;
  DType dtype = DType::f32;
  uint64_t seed = 0;
};

// One step: x (B, I), h (B, H) -> h' (B, H). Parameters weight_ih (H, I), weight_hh (H, H), bias_ih, bias_hh.
class RNNCell : public detail::CellBase {
 public:
  explicit RNNCell(const RNNCellOptions& options);
  Tensor forward(const Tensor& x, const Tensor& h = {}) const;  // h undefined: zeros
  const RNNCellOptions& options() const { return options_; }

 private:
  RNNCellOptions options_;
};

}  // namespace seqgrad
