// LSTM: LSTMCell (one step) and LSTM (a sequence, stacked and optionally bidirectional).
//
//   LSTM lstm({.input_size = 5, .hidden_size = 8, .num_layers = 2});
//   auto [out, h_n, c_n] = lstm.forward(x);   // x (B, T, 5) -> out (B, T, 8), h_n and c_n (2, B, 8)
//   auto next = lstm.forward(x2, detach_state({h_n, c_n}), lengths);   // carry the state on
//
// Exactly PyTorch's torch.nn.LSTM, gate order i, f, g, o (rows of W_ih, W_hh, b_ih, b_hh):
//   i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)
//   f = sigmoid(W_if x + b_if + W_hf h + b_hf)
//   g = tanh   (W_ig x + b_ig + W_hg h + b_hg)
//   o = sigmoid(W_io x + b_io + W_ho h + b_ho)
//   c' = f * c + i * g
//   h' = o * tanh(c')
//   weight_ih_l{k}: (4H, I) for k = 0, (4H, D*H) above;  weight_hh_l{k}: (4H, H);  biases (4H);
//   "_reverse" suffix for the backward direction; all init U(-1/sqrt(H), 1/sqrt(H)).
// Shapes: x (B, T, I) batch_first (default) or (T, B, I); h0, c0, h_n, c_n (num_layers*D, B, H);
// output (B, T, D*H) or (T, B, D*H). Time loop, dropout between layers and lengths: see recurrent.h.
#pragma once

#include <cstdint>
#include <span>

#include "layers/recurrent.h"

namespace seqgrad {

struct LSTMOptions {
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

class LSTM : public detail::RecurrentBase {
 public:
  explicit LSTM(const LSTMOptions& options);
  // state {h0, c0}: undefined parts are zeros. lengths: one in [1, T] per sequence, or empty.
  LSTMOutput forward(const Tensor& x, const LSTMState& state = {}, std::span<const int64_t> lengths = {});
  const LSTMOptions& options() const { return options_; }

 private:
  LSTMOptions options_;
};

struct LSTMCellOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  bool bias = true;
  DType dtype = DType::f32;
  uint64_t seed = 0;
};

// One step: x (B, I), {h, c} (B, H) each -> {h', c'}. Parameters weight_ih (4H, I), weight_hh (4H, H), biases (4H).
class LSTMCell : public detail::CellBase {
 public:
  explicit LSTMCell(const LSTMCellOptions& options);
  LSTMState forward(const Tensor& x, const LSTMState& state = {}) const;
  const LSTMCellOptions& options() const { return options_; }

 private:
  LSTMCellOptions options_;
};

}  // namespace seqgrad
