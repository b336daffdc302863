// Fused point-wise kernels of the recurrent cells, one batch row (H hidden units) per call.
// xp and hp are the row's input and hidden projections, G*H wide in PyTorch's gate order
// (LSTM i,f,g,o; GRU r,z,n). Forward kernels save the activations backward needs in `act`;
// backward kernels accumulate (+=) into whichever of dxp, dhp, dprev is not null, and read dh
// (and, for LSTM, dc) as zero when null. Never throw; no threading here (the op splits rows).
#pragma once

#include <cstdint>

namespace seqgrad::kernels {

// h = tanh(xp + hp), or relu.
template <class T> void rnn_cell_fwd(T* h, const T* xp, const T* hp, bool relu, int64_t H);
template <class T> void rnn_cell_bwd(T* dxp, T* dhp, const T* h, const T* dh, bool relu, int64_t H);

// act = (i, f, g, o, tanh(c)) (5H); c = f*c_prev + i*g; h = o*tanh(c).
template <class T> void lstm_cell_fwd(T* h, T* c, T* act, const T* xp, const T* hp, const T* c_prev, int64_t H);
template <class T>
void lstm_cell_bwd(T* dxp, T* dhp, T* dc_prev, const T* act, const T* c_prev, const T* dh, const T* dc, int64_t H);

// act = (r, z, n) (3H); n = tanh(xn + r*hn); h = (1-z)*n + z*h_prev.
template <class T> void gru_cell_fwd(T* h, T* act, const T* xp, const T* hp, const T* h_prev, int64_t H);
template <class T>
void gru_cell_bwd(T* dxp, T* dhp, T* dh_prev, const T* act, const T* hp, const T* h_prev, const T* dh, int64_t H);

}  // namespace seqgrad::kernels
