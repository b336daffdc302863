// Dispatch for cells.h: one instruction-set choice per kernel, made on first use.
#include "autograd/kernels/cells.h"

#include "autograd/kernels/arch.h"
#include "autograd/kernels/cells_impl.hpp"

namespace seqgrad::kernels {

template <class T>
void rnn_cell_fwd(T* h, const T* xp, bool relu, int64_t H) {
  dispatched<rnn_fwd_kernel>()(h, xp, relu, H);
}
template <class T>
void rnn_cell_bwd(T* dxp, T* dpre, const T* h, const T* dh, bool relu, int64_t H) {
  dispatched<rnn_bwd_kernel>()(dxp, dpre, h, dh, relu, H);
}
template <class T>
void lstm_cell_fwd(T* h, T* c, T* act, const T* xp, const T* c_prev, int64_t H) {
  dispatched<lstm_fwd_kernel>()(h, c, act, xp, c_prev, H);
}
template <class T>
void lstm_cell_bwd(T* dxp, T* dg, T* dc_prev, const T* act, const T* c_prev, const T* c, const T* dh, const T* dc,
                   int64_t H) {
  dispatched<lstm_bwd_kernel>()(dxp, dg, dc_prev, act, c_prev, c, dh, dc, H);
}
template <class T>
void gru_cell_fwd(T* h, T* act, T* hn, const T* xp, const T* hp, const T* h_prev, int64_t H) {
  dispatched<gru_fwd_kernel>()(h, act, hn, xp, hp, h_prev, H);
}
template <class T>
void gru_cell_bwd(T* dxp, bool store_dxp, T* dhp, T* dh_prev, const T* act, const T* hn, const T* h_prev, const T* dh,
                  int64_t H) {
  dispatched<gru_bwd_kernel>()(dxp, store_dxp, dhp, dh_prev, act, hn, h_prev, dh, H);
}

#define SEQGRAD_DEFINE(T)                                                                                \
  template void rnn_cell_fwd<T>(T*, const T*, bool, int64_t);                                            \
  template void rnn_cell_bwd<T>(T*, T*, const T*, const T*, bool, int64_t);                              \
  template void lstm_cell_fwd<T>(T*, T*, T*, const T*, const T*, int64_t);                               \
  template void lstm_cell_bwd<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t); \
  template void gru_cell_fwd<T>(T*, T*, T*, const T*, const T*, const T*, int64_t);                     \
  template void gru_cell_bwd<T>(T*, bool, T*, T*, const T*, const T*, const T*, const T*, int64_t);
SEQGRAD_DEFINE(float)
SEQGRAD_DEFINE(double)
#undef SEQGRAD_DEFINE

}  // namespace seqgrad::kernels
