#include "layers/lstm.h"

#include "autograd/ops.h"

namespace seqgrad {

LSTM::LSTM(const LSTMOptions& o)
    : RecurrentBase(detail::make_config("LSTM", detail::CellKind::lstm, o)), options_(o) {}

LSTMOutput LSTM::forward(const Tensor& x, const LSTMState& state, std::span<const int64_t> lengths) {
  return run(x, state.h, state.c, lengths);
}

LSTMCell::LSTMCell(const LSTMCellOptions& o)
    : CellBase("LSTMCell", detail::CellKind::lstm, o.input_size, o.hidden_size, o.bias, o.dtype, o.seed), options_(o) {}

LSTMState LSTMCell::forward(const Tensor& x, const LSTMState& state) const {
  return step(x, state);
}

}  // namespace seqgrad
