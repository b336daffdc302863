#include "layers/gru.h"

#include "autograd/ops.h"

namespace seqgrad {

namespace detail {
// 13 ops (14 with the loop's select). r and z come from one sigmoid over the summed (B, 3H)
// pre-activations (the n block's is unused); n needs the input and hidden halves apart because r
// multiplies only the hidden one.
Tensor gru_step(const Tensor& xp, int time_axis, int64_t t, const Tensor& h, const Tensor& w_hh, const Tensor& b_hh) {
  Tensor hp = linear(h, w_hh, b_hh);  // (B, 3H): W_hr h + b_hr, W_hz h + b_hz, W_hn h + b_hn
  return gru_cell(xp, time_axis, t, hp, h);  // r, z, n and (1 - z) * n + z * h, fused
}
}  // namespace detail

GRU::GRU(const GRUOptions& o)
    : RecurrentBase(detail::make_config("GRU", detail::CellKind::gru, o)), options_(o) {}

RNNOutput GRU::forward(const Tensor& x, const Tensor& h0, std::span<const int64_t> lengths) {
  LSTMOutput r = run(x, h0, {}, lengths);
  return {r.output, r.h_n};
}

GRUCell::GRUCell(const GRUCellOptions& o)
    : CellBase("GRUCell", detail::CellKind::gru, o.input_size, o.hidden_size, o.bias, o.dtype, o.seed), options_(o) {}

Tensor GRUCell::forward(const Tensor& x, const Tensor& h) const {
  Tensor xp = project(x);
  return detail::gru_step(xp, 1, 0, state_or_zeros(h, "h", x.size(0)), w_hh_, b_hh_);
}

}  // namespace seqgrad
