#include "layers/gru.h"

#include "autograd/ops.h"

namespace seqgrad {

GRU::GRU(const GRUOptions& o)
    : RecurrentBase(detail::make_config("GRU", detail::CellKind::gru, o)), options_(o) {}

RNNOutput GRU::forward(const Tensor& x, const Tensor& h0, std::span<const int64_t> lengths) {
  LSTMOutput r = run(x, h0, {}, lengths);
  return {r.output, r.h_n};
}

GRUCell::GRUCell(const GRUCellOptions& o)
    : CellBase("GRUCell", detail::CellKind::gru, o.input_size, o.hidden_size, o.bias, o.dtype, o.seed), options_(o) {}

Tensor GRUCell::forward(const Tensor& x, const Tensor& h) const {
  return step(x, {h, {}}).h;
}

}  // namespace seqgrad
