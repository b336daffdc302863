#include "layers/lstm.h"

#include "autograd/ops.h"

namespace seqgrad {

namespace detail {
// 13 ops (14 with the loop's select). One sigmoid over all four gate blocks (the g block's is
// unused) is cheaper on the tape than three separate ones.
LSTMState lstm_step(const Tensor& xp, int time_axis, int64_t t, const LSTMState& s, const Tensor& w_hh,
                    const Tensor& b_hh) {
  // gates = xp_t + h W_hh^T + b_hh (B, 4H): i, f, g, o; the point-wise rest is one fused op.
  auto [h, c] = lstm_cell(xp, time_axis, t, linear(s.h, w_hh, b_hh), s.c);
  return {h, c};
}
}  // namespace detail

LSTM::LSTM(const LSTMOptions& o)
    : RecurrentBase(detail::make_config("LSTM", detail::CellKind::lstm, o)), options_(o) {}

LSTMOutput LSTM::forward(const Tensor& x, const LSTMState& state, std::span<const int64_t> lengths) {
  return run(x, state.h, state.c, lengths);
}

LSTMCell::LSTMCell(const LSTMCellOptions& o)
    : CellBase("LSTMCell", detail::CellKind::lstm, o.input_size, o.hidden_size, o.bias, o.dtype, o.seed), options_(o) {}

LSTMState LSTMCell::forward(const Tensor& x, const LSTMState& state) const {
  Tensor xp = project(x);
  int64_t B = x.size(0);
  return detail::lstm_step(xp, 1, 0, {state_or_zeros(state.h, "h", B), state_or_zeros(state.c, "c", B)}, w_hh_, b_hh_);
}

}  // namespace seqgrad
