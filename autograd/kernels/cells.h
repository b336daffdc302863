// Fused point-wise kernels of the recurrent cells, one batch row (H hidden units) per call.
// The cell ops (ops_cells.cpp) first compute the row's hidden product h_prev W_hh^T with the GEMM;
// xp is the row's input projection. Both are G*H wide in PyTorch's gate order (LSTM i,f,g,o;
// GRU r,z,n). Forward kernels save what backward needs in `act`; backward kernels store the
// pre-activation gradients in `dg` / `dhp` (which the op multiplies by W_hh and h_prev) and
// accumulate (+=) into whichever of dxp, dprev is not null; a null dh or dc reads as zero.
// Outputs may alias the inputs they replace (act over xp, dg over act): each element is read
// before it is written. Never throw; no threading here (the op splits rows).
#pragma once

#include <cstdint>

namespace seqgrad::kernels {

// h = tanh(h + xp) (or relu): h holds h_prev W_hh^T on entry. dpre = dh * act'(.).
template <class T> void rnn_cell_fwd(T* h, const T* xp, bool relu, int64_t H);
template <class T> void rnn_cell_bwd(T* dxp, T* dpre, const T* h, const T* dh, bool relu, int64_t H);

// act holds h_prev W_hh^T (4H) on entry (plus xp when xp is null: the gates' pre-activations) and
// (i, f, g, o) on exit; c = f*c_prev + i*g; h = o*tanh(c). Backward recomputes tanh(c) from c;
// dg = the four gates' pre-activation gradients (4H).
template <class T> void lstm_cell_fwd(T* h, T* c, T* act, const T* xp, const T* c_prev, int64_t H);
template <class T>
void lstm_cell_bwd(T* dxp, T* dg, T* dc_prev, const T* act, const T* c_prev, const T* c, const T* dh, const T* dc,
                   int64_t H);

// hp = h_prev W_hh^T + b_hh (3H). act = (r, z, n) (3H), hn = hp_n (H); n = tanh(xn + r*hp_n);
// h = (1-z)*n + z*h_prev; act and hn null: not stored (inference). Backward: dhp = gradient of hp (3H); dxp is stored (=) when store_dxp.
template <class T> void gru_cell_fwd(T* h, T* act, T* hn, const T* xp, const T* hp, const T* h_prev, int64_t H);
template <class T>
void gru_cell_bwd(T* dxp, bool store_dxp, T* dhp, T* dh_prev, const T* act, const T* hn, const T* h_prev, const T* dh,
                  int64_t H);

}  // namespace seqgrad::kernels
