#include "layers/rnn.h"

#include "autograd/ops.h"

namespace seqgrad {

namespace detail {
// h' = act(xp + h W_hh^T + b_hh): 3 ops.
Tensor rnn_step(const Tensor& xp, int time_axis, int64_t t, const Tensor& h, const Tensor& w_hh, const Tensor& b_hh,
                bool use_relu) {
  return rnn_cell(xp, time_axis, t, linear(h, w_hh, b_hh), use_relu);  // act(xp_t + h W_hh^T + b_hh)
}
}  // namespace detail

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
  Tensor xp = project(x);
  return detail::rnn_step(xp, 1, 0, state_or_zeros(h, "h", x.size(0)), w_hh_, b_hh_,
                          options_.nonlinearity == Nonlinearity::relu);
}

}  // namespace seqgrad
