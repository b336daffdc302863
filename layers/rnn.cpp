#include "layers/rnn.h"

#include "autograd/ops.h"

namespace seqgrad {

RNN::RNN(const RNNOptions& o)
    : RecurrentBase(detail::make_config(
          "RNN", o.nonlinearity == Nonlinearity::relu ? detail::CellKind::rnn_relu : detail::CellKind::rnn_tanh, o)),
      options_(o) {}

RNNOutput RNN::forward(const Tensor& x, const Tensor& h0, std::span<const int64_t> lengths) {
  LSTMOutput r = run(x, h0, {}, lengths);
  return {r.output, r.h_n};
}

RNNCell::RNNCell(const RNNCellOptions& o)
    : CellBase("RNNCell",
               o.nonlinearity == Nonlinearity::relu ? detail::CellKind::rnn_relu : detail::CellKind::rnn_tanh,
               o.input_size, o.hidden_size, o.bias, o.dtype, o.seed),
      options_(o) {}

Tensor RNNCell::forward(const Tensor& x, const Tensor& h) const {
  return step(x, {h, {}}).h;
}

}  // namespace seqgrad
