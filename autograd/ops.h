// Differentiable operations on Tensors. Every function checks its arguments when it is called
// (throwing std::invalid_argument that names the op and the shapes) and, in grad mode, records
// itself on the tape. Element-wise binary ops broadcast by NumPy rules; their gradients are
// summed back to each input's shape. Inputs of one op must share a dtype.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "autograd/tensor.h"

namespace seqgrad {

// Element-wise, broadcasting.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor pow(const Tensor& a, double p);
Tensor neg(const Tensor& a);

Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);

// a: (M,K) @ b: (K,N) -> (M,N); a: (B,M,K) @ b: (B,K,N) or (K,N) -> (B,M,N).
Tensor matmul(const Tensor& a, const Tensor& b);
// x: (..., I), w: (O, I), b: (O) or undefined -> x w^T + b: (..., O). One fused op.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = {});

// Shape ops. reshape accepts one -1 extent, inferred. reshape is a view, and so are select and
// slice when the part they take is one contiguous block of a contiguous x (along its first axis,
// say: a time-major sequence's step t): no copy, and writing into the result (fill_, an optimizer
// step) writes into x, as in PyTorch; clone() for a copy. The rest copy.
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor transpose(const Tensor& x, int axis0, int axis1);
Tensor select(const Tensor& x, int axis, int64_t index);               // drops `axis`
Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end);   // [start, end)
Tensor concat(std::span<const Tensor> xs, int axis);
Tensor stack(std::span<const Tensor> xs, int axis);                    // new axis
Tensor unsqueeze(const Tensor& x, int axis);
Tensor squeeze(const Tensor& x, int axis);

// Reductions.
Tensor sum(const Tensor& x);                                  // -> shape ()
Tensor sum(const Tensor& x, int axis, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int axis, bool keepdim = false);
Tensor softmax(const Tensor& x, int axis);
Tensor log_softmax(const Tensor& x, int axis);

// Losses, averaged over elements (rows for cross_entropy) -> shape ().
Tensor mse_loss(const Tensor& input, const Tensor& target);
// Stable for large |logits|: max(x,0) - x*y + log(1 + exp(-|x|)). Element-wise, no reduction.
Tensor bce_with_logits_elementwise(const Tensor& logits, const Tensor& target);
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target);
// logits: (N, C); target: N class indices in [0, C).
Tensor cross_entropy(const Tensor& logits, std::span<const int64_t> target);
// logp: (N, C) log-probabilities; -mean_i logp[i, target[i]].
Tensor nll_loss(const Tensor& logp, std::span<const int64_t> target);

// weight: (V, D); indices of any shape `index_shape` in [0, V) -> index_shape + (D).
Tensor embedding(const Tensor& weight, std::span<const int64_t> indices, const Shape& index_shape);

// A weight W (O, I) packed for the GEMM once and reused by many products, such as a recurrent
// W_hh (G*H, H) over the steps of a sequence: for the forward product h W^T when made, for the
// backward product dy W on first use (the GEMM would otherwise repack W at every step). The
// packings copy W's values, so make a new one per forward pass: an optimizer step changes W in
// place. A Tensor converts to one implicitly, so a single step may pass W_hh itself.
class PackedWeight {
 public:
  PackedWeight(const Tensor& w);  // NOLINT(google-explicit-constructor): see above
  const Tensor& tensor() const { return w_; }
  struct Packs;  // the packed copies, shared with the tape nodes that read them
  const std::shared_ptr<Packs>& packs() const { return packs_; }

 private:
  Tensor w_;
  std::shared_ptr<Packs> packs_;
};

// linear with W packed once (above): a custom cell's h W_hh^T at every step, e.g.
//   PackedWeight w(w_hh);  for (...) gates = linear(h, w) + ...;
// The same values, bitwise, as linear(x, w.tensor(), b), and the same gradients.
Tensor linear(const Tensor& x, const PackedWeight& w, const Tensor& b = {});

// What a cell may do with xp. keep: xp is an ordinary input, never written. consume (the sequence
// layers' choice, for a projection that only their cells read): each step's cell overwrites its
// slice of xp with the activations backward needs, and backward overwrites those with the slice's
// gradient, which becomes xp's gradient: activations and dxp cost no memory beyond xp itself.
// Consumed, xp must be read by nothing else after its cells, each step consumed once, and one xp
// per PackedWeight. A retain_graph backward leaves the activations in place (a second pass reads them).
enum class XpUse : uint8_t { keep, consume };

// Recurrent cells: one tape op per step, hidden product included. xp is the input projection,
// either of one step (B, G*H) or of a whole sequence (B, T, G*H) with time_axis 1 / (T, B, G*H)
// with time_axis 0, of which step t is read in place; h, c: (B, H); w_hh: (G*H, H). Gate order and
// equations are PyTorch's, with hp = h W_hh^T (+ b_hh for GRU; RNN and LSTM callers fold b_hh
// into xp, where PyTorch adds it anyway):
//   rnn_cell:  h' = tanh(xp + hp)   (relu: max(0, .))                          G = 1
//   lstm_cell: i,f,g,o = sig, sig, tanh, sig (xp + hp); c' = f*c + i*g; h' = o*tanh(c')   G = 4
//   gru_cell:  r,z = sig(xp + hp); n = tanh(xp_n + r*hp_n); h' = (1-z)*n + z*h   G = 3
// Kept for backward: h' (RNN); i, f, g, o and c' (LSTM, 4H + state); r, z, n and hp_n (GRU, 4H).
// h may be a row view (detail::row_view); `out`, when given, is the (B, H) tensor h' is written to
// and returned as, e.g. a row view of step t in a layer's (B, T, H) output, so that the sequence's
// states and its output are one buffer.
Tensor rnn_cell(const Tensor& xp, int time_axis, int64_t t, const Tensor& h, const PackedWeight& w_hh,
                bool relu = false, XpUse use = XpUse::keep, const Tensor& out = {});
std::pair<Tensor, Tensor> lstm_cell(const Tensor& xp, int time_axis, int64_t t, const Tensor& h, const Tensor& c,
                                    const PackedWeight& w_hh, XpUse use = XpUse::keep, const Tensor& out = {});
Tensor gru_cell(const Tensor& xp, int time_axis, int64_t t, const Tensor& h, const PackedWeight& w_hh,
                const Tensor& b_hh = {}, XpUse use = XpUse::keep, const Tensor& out = {});

namespace detail {
// The cells' forward without the tape, for streaming inference (RecurrentBase::step) and the
// sequence layers' forward when nothing records: G = 1 (RNN), 3 (GRU) or 4 (LSTM); xp (B, G*H),
// possibly a row view, holds the step's input projection and is overwritten; h (B, H) is read and h' written to h_out,
// which may be h itself (in place) or another (B, H), either possibly a row view; c (LSTM) (B, H),
// contiguous, is updated in place; hp (B, G*H) is scratch (RNN, GRU); b_hh is read by GRU only.
// The same kernels in the same order as the cells with XpUse::consume, so the states are bitwise
// those of the recorded path. Allocates nothing.
void cell_forward_untaped(int G, bool relu, const Tensor& xp, const Tensor& h, const Tensor& h_out, const Tensor& c,
                          const PackedWeight& w, const Tensor& b_hh, const Tensor& hp);
// out (B, N) = x (B, K) W^T + b for a packed W (N, K) (x possibly a row view), without the tape or
// allocation, each row bitwise as linear() computes it in a product of two rows or more.
void linear_rows_into(const Tensor& x, const PackedWeight& w, const Tensor& b, const Tensor& out);
}  // namespace detail

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator+(double s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
inline Tensor operator-(double s, const Tensor& a) { return add(neg(a), s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
inline Tensor operator/(double s, const Tensor& a) { return mul(pow(a, -1.0), s); }

}  // namespace seqgrad
