// The recurrent cells (rnn_cell, lstm_cell, gru_cell) and PackedWeight, the packed weight they (and linear) share.
// Dimension legend and conventions: autograd/ops_internal.h.
#include "autograd/ops.h"

#include <algorithm>

#include "autograd/kernels/cells.h"
#include "autograd/ops_internal.h"

namespace seqgrad {
using namespace detail;

PackedWeight::PackedWeight(const Tensor& w) : w_(w), packs_(std::make_shared<Packs>()) {
  check_defined("PackedWeight", w, "weight");
  if (w.rank() != 2) throw std::invalid_argument(fmt::format("PackedWeight: weight is {}; expected a matrix (O, I)", w.shape()));
  by_dtype(w.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (int64_t n = k::gemm_packed_size<T>(w.size(1), w.size(0))) {
      packs_->fwd = Tensor::empty({n}, w.dtype());
      packs_->fwd_bf16 = std::is_same_v<T, float> && k::bf16::enabled();
      k::gemm_pack_b(packs_->forward<T>(w));
    }
  });
}

namespace detail {

// Where the rows of step t start in xp, and the checks every cell shares. G gates of H units.
struct CellRows {
  int64_t B, H, T, base, stride;  // xp row b of step t starts at base + b * stride
  int64_t row(int64_t b) const { return base + b * stride; }
};

// Offset of step t's first row in xp.
int64_t step_base(const Tensor& xp, int time_axis, int64_t t) {
  const int64_t GH = xp.size(-1);
  if (xp.rank() == 2) return 0;
  return time_axis == 1 ? t * GH : t * xp.size(1) * GH;
}

CellRows cell_rows(const char* op, const Tensor& xp, int time_axis, int64_t t, const Tensor& h, int64_t G,
                   const Tensor& w, const Tensor& c) {
  check_defined(op, xp, "xp");
  check_defined(op, h, "h");
  check_same_dtype(op, xp, h);
  check_same_dtype(op, xp, w);
  if (h.rank() != 2) throw std::invalid_argument(fmt::format("{}: h is {}; expected (B, H)", op, h.shape()));
  int64_t B = h.size(0), H = h.size(1), GH = G * H;
  if (w.shape() != Shape{GH, H})
    throw std::invalid_argument(
        fmt::format("{}: w_hh is {} but h is {}; expected ({}, {}) = ({}*H, H)", op, w.shape(), h.shape(), GH, H, G));
  bool ok = xp.size(-1) == GH && (xp.rank() == 2 || xp.rank() == 3);
  if (ok && xp.rank() == 2) ok = xp.size(0) == B;
  if (ok && xp.rank() == 3) ok = (time_axis == 0 || time_axis == 1) && xp.size(1 - time_axis) == B;
  if (!ok)
    throw std::invalid_argument(fmt::format(
        "{}: xp is {} but h is {}; expected xp (B, {}*H) or (B, T, {}*H) / (T, B, {}*H) with time_axis 1 / 0", op,
        xp.shape(), h.shape(), G, G, G));
  int64_t T = xp.rank() == 3 ? xp.size(time_axis) : 1;
  if (t < 0 || t >= T) throw std::invalid_argument(fmt::format("{}: step {} is out of range for xp {}", op, t, xp.shape()));
  if (c.defined()) {
    check_same_dtype(op, xp, c);
    if (c.shape() != h.shape())
      throw std::invalid_argument(fmt::format("{}: c is {} but h is {}; expected the same", op, c.shape(), h.shape()));
  }
  const int64_t stride = xp.rank() == 3 && time_axis == 1 ? T * GH : GH;
  return {B, H, T, step_base(xp, time_axis, t), stride};
}

// A cell reading step t's rows of xp (projected for the whole sequence long before, and since
// evicted from L2) fetches a row a few ahead of the one it computes: hides the L3 latency that
// the hardware prefetchers leave (GRU forward 5% faster at H = 256 and 512). G*H values a row.
template <class T>
void prefetch_xp_row(const T* xp, const CellRows& r, int64_t b, int64_t G) {
  constexpr int64_t ahead = 3, line = 64 / int64_t(sizeof(T));
  if (b + ahead >= r.B) return;
  const T* row = xp + r.row(b + ahead);
  for (int64_t o = 0; o < G * r.H; o += line) __builtin_prefetch(row + o);
}

// Rows are independent: threads split them when the step is large.
bool parallel_rows(const CellRows& r, int64_t G) { return r.B > 1 && r.B * r.H * G >= (1 << 16); }

template <class T>
T* grad_ptr(const Node& n, int i) {
  return n.needs_grad[i] ? ptr<T>(grad_of(n.in[i])) : nullptr;
}

// The rows of a (B, H) state, which may be a row view into a sequence layer's output.
template <class T>
struct Rows {
  T* p = nullptr;
  int64_t ld = 0;
  T* row(int64_t r) const { return p ? p + r * ld : nullptr; }
};
template <class T>
Rows<T> rows_of(const Tensor& t) {
  if (!t.defined()) return {};
  return {static_cast<T*>(t.raw_rows()), t.row_stride()};
}

// The state h' is written to: `out` when given (checked against (B, H)), else a new tensor.
Tensor state_out(const char* op, const Tensor& out, const Tensor& like) {
  if (!out.defined()) return Tensor::empty(like.shape(), like.dtype());
  if (out.shape() != like.shape() || out.dtype() != like.dtype() || out.requires_grad())
    throw std::invalid_argument(fmt::format("{}: out is {} {}{}; expected {} {} without grad", op, out.shape(),
                                            out.dtype(), out.requires_grad() ? " requiring grad" : "", like.shape(),
                                            like.dtype()));
  if (out.raw_rows() == like.raw_rows())  // h is read while h' is written
    throw std::invalid_argument(fmt::format("{}: out is the same memory as h; pass another tensor", op));
  return out;
}

PackedWeight::Packs& packs_of(const Node& n) { return *static_cast<PackedWeight::Packs*>(n.shared.get()); }

// XpUse::consume, forward: registers step t of xp with the sequence's PackedWeight.
void consume_step(const char* op, PackedWeight::Packs& p, const Tensor& xp, const CellRows& r, int64_t t) {
  if (p.xp && p.xp != &xp.impl())
    throw std::invalid_argument(fmt::format("{}: this PackedWeight already consumes another xp; use one per xp", op));
  if (!p.xp) {  // one allocation each per sequence, none per step
    p.consumed.assign(size_t(r.T), 0);
    p.steps.reserve(size_t(r.T));
  }
  if (p.consumed[size_t(t)])
    throw std::invalid_argument(fmt::format("{}: step {} of xp {} was already consumed", op, t, xp.shape()));
  p.xp = &xp.impl();
  p.consumed[size_t(t)] = 1;
  p.steps.push_back(t);
}

// XpUse::consume, backward: whether this pass may overwrite the activations with gradients (not
// when the graph is retained). The first such cell of a sequence prepares xp's gradient: the steps
// recorded up to its own will all be visited, each feeding the next through h, and each writes
// its slice; every other slice gets zeros. xp's gradient is then xp itself.
template <class T>
bool backward_in_place(const Node& n, const CellRows& r) {
  if (n.iattr[2] >> 1 == 0 || Tape::current().retains_graph()) return false;
  PackedWeight::Packs& p = packs_of(n);
  const bool first = !p.backward_started;
  p.backward_started = true;
  if (!first || !n.needs_grad[0]) return true;
  const Tensor& xp = n.in[0];
  std::vector<char> visited(size_t(r.T), 0);
  for (int64_t s : p.steps) {
    visited[size_t(s)] = 1;
    if (s == n.iattr[1]) break;
  }
  for (int64_t s = 0; s < r.T; ++s) {
    if (visited[size_t(s)]) continue;
    T* slice = ptr<T>(xp) + step_base(xp, int(n.iattr[0]), s);
    for (int64_t b = 0; b < r.B; ++b) std::fill_n(slice + b * r.stride, xp.size(-1), T(0));
  }
  xp.impl().grad = xp.detach().impl_ptr();
  return true;
}

// The hidden product's backward, shared by the cells: given dg = d(h W^T) (B, G*H, row stride
// ldg), dh += dg W (packed once per sequence), dW += dg^T h and, when db is given (GRU's b_hh),
// db += dg's column sums.
template <class T>
void hidden_product_bwd(const Node& n, const T* dg, int64_t ldg, int h_in, int w_in, T* db = nullptr) {
  const Tensor& h = n.in[h_in];
  const int64_t B = h.size(0), H = h.size(1), GH = n.in[w_in].size(0);
  if (n.needs_grad[h_in]) {
    auto [dh, fresh] = grad_slot(h);
    const Rows<T> d = rows_of<T>(dh);
    k::gemm_packed<T>(B, dg, ldg, packs_of(n).backward<T>(n.in[w_in]), T(!fresh), d.p, d.ld);
  }
  if (n.needs_grad[w_in]) {
    auto [dw, fresh] = grad_slot(n.in[w_in]);
    const Rows<T> hr = rows_of<T>(h);
    k::gemm<T>(true, false, GH, H, B, dg, ldg, hr.p, hr.ld, T(!fresh), ptr<T>(dw), H, nullptr, db);
  } else if (db) {
    k::column_sums(db, dg, ldg, B, GH);
  }
}

}  // namespace detail

Tensor rnn_cell(const Tensor& xp, int time_axis, int64_t t, const Tensor& h, const PackedWeight& w_hh, bool relu,
                XpUse use, const Tensor& out) {
  const Tensor& w = w_hh.tensor();
  CellRows r = cell_rows("rnn_cell", xp, time_axis, t, h, 1, w, {});
  if (use == XpUse::consume) consume_step("rnn_cell", *w_hh.packs(), xp, r, t);  // read as is; backward writes it
  Tensor h_next = state_out("rnn_cell", out, h);
  by_dtype(xp.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Rows<T> hr = rows_of<T>(h), hn = rows_of<T>(h_next);
    k::gemm_packed<T>(r.B, hr.p, hr.ld, w_hh.packs()->forward<T>(w), T(0), hn.p, hn.ld);
    k::parallel_for(r.B, parallel_rows(r, 1), [&](int64_t b) {
      prefetch_xp_row(ptr<T>(xp), r, b, 1);
      k::rnn_cell_fwd(hn.row(b), ptr<T>(xp) + r.row(b), relu, r.H);
    });
  });
  if (recording("rnn_cell", {&xp, &h, &w}, h_next))
    record({.op = Op::RnnCell, .in = {xp, h, w}, .out = h_next, .shared = w_hh.packs(),
            .iattr = {time_axis, t, relu | int64_t(use == XpUse::consume) << 1}});
  return h_next;
}

std::pair<Tensor, Tensor> lstm_cell(const Tensor& xp, int time_axis, int64_t t, const Tensor& h, const Tensor& c,
                                    const PackedWeight& w_hh, XpUse use, const Tensor& out) {
  check_defined("lstm_cell", c, "c");
  const Tensor& w = w_hh.tensor();
  CellRows r = cell_rows("lstm_cell", xp, time_axis, t, h, 4, w, c);
  const bool consume = use == XpUse::consume;
  if (consume) consume_step("lstm_cell", *w_hh.packs(), xp, r, t);
  Tensor h_next = state_out("lstm_cell", out, h), c_next = Tensor::empty({r.B, r.H}, xp.dtype());
  Tensor act = consume ? Tensor() : Tensor::empty({r.B, 4 * r.H}, xp.dtype());  // consumed: xp's slice
  by_dtype(xp.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Rows<T> hr = rows_of<T>(h), hn = rows_of<T>(h_next), cr = rows_of<T>(c);
    T* gates = consume ? ptr<T>(xp) + r.base : ptr<T>(act);
    const int64_t ld = consume ? r.stride : 4 * r.H;
    k::gemm_packed<T>(r.B, hr.p, hr.ld, w_hh.packs()->forward<T>(w), T(consume), gates, ld);
    k::parallel_for(r.B, parallel_rows(r, 4), [&](int64_t b) {
      k::lstm_cell_fwd(hn.row(b), ptr<T>(c_next) + b * r.H, gates + b * ld, consume ? nullptr : ptr<T>(xp) + r.row(b),
                       cr.row(b), r.H);
    });
  });
  if (recording("lstm_cell", {&xp, &h, &c, &w}, h_next, &c_next))
    record({.op = Op::LstmCell, .in = {xp, h, c, w}, .out = h_next, .out2 = c_next, .saved = act,
            .shared = w_hh.packs(), .iattr = {time_axis, t, int64_t(consume) << 1}});
  return {h_next, c_next};
}

Tensor gru_cell(const Tensor& xp, int time_axis, int64_t t, const Tensor& h, const PackedWeight& w_hh,
                const Tensor& b_hh, XpUse use, const Tensor& out) {
  const Tensor& w = w_hh.tensor();
  CellRows r = cell_rows("gru_cell", xp, time_axis, t, h, 3, w, {});
  if (b_hh.defined()) {
    check_same_dtype("gru_cell", xp, b_hh);
    if (b_hh.shape() != Shape{3 * r.H})
      throw std::invalid_argument(fmt::format("gru_cell: b_hh is {}; expected ({},)", b_hh.shape(), 3 * r.H));
  }
  const bool consume = use == XpUse::consume;
  if (consume) consume_step("gru_cell", *w_hh.packs(), xp, r, t);
  // Saved for backward: r, z, n (3H) in xp's slice when consumed, then hp_n (H); otherwise all
  // four (4H) here. Nothing when nothing will be recorded.
  const bool saves = records("gru_cell", {&xp, &h, &w, &b_hh});
  Tensor h_next = state_out("gru_cell", out, h);
  Tensor saved = saves ? Tensor::empty({r.B, (consume ? 1 : 4) * r.H}, xp.dtype()) : Tensor();
  Tensor hp = Tensor::empty({r.B, 3 * r.H}, xp.dtype());  // scratch
  by_dtype(xp.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Rows<T> hr = rows_of<T>(h), hn_rows = rows_of<T>(h_next);
    T* php = ptr<T>(hp);
    k::gemm_packed<T>(r.B, hr.p, hr.ld, w_hh.packs()->forward<T>(w), T(0), php, 3 * r.H, ptr_or_null<T>(b_hh));
    k::parallel_for(r.B, parallel_rows(r, 3), [&](int64_t b) {
      prefetch_xp_row(ptr<T>(xp), r, b, 3);
      T* act = !saves ? nullptr : consume ? ptr<T>(xp) + r.row(b) : ptr<T>(saved) + b * 4 * r.H;
      T* hn = !saves ? nullptr : consume ? ptr<T>(saved) + b * r.H : act + 3 * r.H;
      k::gru_cell_fwd(hn_rows.row(b), act, hn, ptr<T>(xp) + r.row(b), php + b * 3 * r.H, hr.row(b), r.H);
    });
  });
  if (recording("gru_cell", {&xp, &h, &w, &b_hh}, h_next))
    record({.op = Op::GruCell, .in = {xp, h, w, b_hh}, .out = h_next, .saved = saved, .shared = w_hh.packs(),
            .iattr = {time_axis, t, int64_t(consume) << 1}});
  return h_next;
}

void detail::cell_forward_untaped(int G, bool relu, const Tensor& xp, const Tensor& h, const Tensor& h_out,
                                  const Tensor& c, const PackedWeight& w, const Tensor& b_hh, const Tensor& hp) {
  const int64_t B = h.size(0), H = h.size(1);
  const CellRows r{B, H, 1, 0, G * H};
  by_dtype(h.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const auto packed = w.packs()->forward<T>(w.tensor());
    const Rows<T> x = rows_of<T>(xp), hr = rows_of<T>(h), out = rows_of<T>(h_out);
    T* p = hp.defined() ? ptr<T>(hp) : nullptr;
    if (G == 4) {  // lstm_cell: gates = xp + h W^T, then h', c in place (the kernel reads each element first)
      k::gemm_packed<T>(B, hr.p, hr.ld, packed, T(1), x.p, x.ld);
      k::parallel_for(B, parallel_rows(r, 4), [&](int64_t b) {
        k::lstm_cell_fwd(out.row(b), ptr<T>(c) + b * H, x.row(b), static_cast<const T*>(nullptr), ptr<T>(c) + b * H, H);
      });
    } else if (G == 3) {  // gru_cell, storing nothing for backward
      k::gemm_packed<T>(B, hr.p, hr.ld, packed, T(0), p, 3 * H, ptr_or_null<T>(b_hh));
      k::parallel_for(B, parallel_rows(r, 3), [&](int64_t b) {
        k::gru_cell_fwd(out.row(b), static_cast<T*>(nullptr), static_cast<T*>(nullptr), x.row(b), p + b * 3 * H,
                        hr.row(b), H);
      });
    } else {  // rnn_cell: h' = act(h W^T + xp), in scratch when h' overwrites h, which the product reads
      const bool in_place = hr.p == out.p;
      const Rows<T> pre = in_place ? Rows<T>{p, H} : out;
      k::gemm_packed<T>(B, hr.p, hr.ld, packed, T(0), pre.p, pre.ld);
      k::parallel_for(B, parallel_rows(r, 1), [&](int64_t b) { k::rnn_cell_fwd(pre.row(b), x.row(b), relu, H); });
      if (in_place)
        for (int64_t b = 0; b < B; ++b) std::copy_n(pre.row(b), H, out.row(b));
    }
  });
}

void detail::linear_rows_into(const Tensor& x, const PackedWeight& w, const Tensor& b, const Tensor& out) {
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Rows<T> xr = rows_of<T>(x);
    k::gemm_packed_rows<T>(x.size(0), xr.p, xr.ld, w.packs()->forward<T>(w.tensor()), ptr<T>(out), out.size(1),
                           ptr_or_null<T>(b));
  });
}

namespace detail {
void RnnCell_bwd(const Node& n) {
  CellRows r = cell_rows("rnn_cell", n.in[0], int(n.iattr[0]), n.iattr[1], n.in[1], 1, n.in[2], {});
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // In place, the pre-activation gradient overwrites xp's slice and is its gradient.
    const bool in_place = backward_in_place<T>(n, r);
    Tensor scratch = in_place ? Tensor() : Tensor::empty({r.B, r.H}, n.out.dtype());
    T* dpre = in_place ? ptr<T>(n.in[0]) + r.base : ptr<T>(scratch);
    const int64_t ld = in_place ? r.stride : r.H;
    T* dxp = in_place ? nullptr : grad_ptr<T>(n, 0);
    const Rows<T> h = rows_of<T>(n.out), dh = rows_of<T>(n.out.grad());
    k::parallel_for(r.B, parallel_rows(r, 1), [&](int64_t b) {
      if (in_place) prefetch_xp_row(ptr<T>(n.in[0]), r, b, 1);
      k::rnn_cell_bwd(dxp ? dxp + r.row(b) : dxp, dpre + b * ld, h.row(b), dh.row(b), (n.iattr[2] & 1) != 0, r.H);
    });
    hidden_product_bwd<T>(n, dpre, ld, 1, 2);
  });
}

void LstmCell_bwd(const Node& n) {
  CellRows r = cell_rows("lstm_cell", n.in[0], int(n.iattr[0]), n.iattr[1], n.in[1], 4, n.in[3], {});
  const bool consumed = n.iattr[2] >> 1 != 0;
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // In place, the gate gradients overwrite the activations in xp's slice and are its gradient.
    const bool in_place = backward_in_place<T>(n, r);
    const T* act = consumed ? ptr<T>(n.in[0]) + r.base : ptr<T>(n.saved);
    const int64_t act_ld = consumed ? r.stride : 4 * r.H;
    Tensor scratch = in_place ? Tensor() : Tensor::empty({r.B, 4 * r.H}, n.out.dtype());
    T* dg = in_place ? ptr<T>(n.in[0]) + r.base : ptr<T>(scratch);
    const int64_t dg_ld = in_place ? r.stride : 4 * r.H;
    T *dxp = in_place ? nullptr : grad_ptr<T>(n, 0), *dc = grad_ptr<T>(n, 2);
    const Rows<T> dh_next = rows_of<T>(n.out.grad()), dc_next = rows_of<T>(n.out2.grad());
    k::parallel_for(r.B, parallel_rows(r, 4), [&](int64_t b) {
      if (consumed) prefetch_xp_row(ptr<T>(n.in[0]), r, b, 4);
      int64_t o = b * r.H;
      k::lstm_cell_bwd(dxp ? dxp + r.row(b) : dxp, dg + b * dg_ld, dc ? dc + o : dc, act + b * act_ld,
                       ptr<T>(n.in[2]) + o, ptr<T>(n.out2) + o, dh_next.row(b), dc_next.row(b), r.H);
    });
    hidden_product_bwd<T>(n, dg, dg_ld, 1, 3);
  });
}

void GruCell_bwd(const Node& n) {
  CellRows r = cell_rows("gru_cell", n.in[0], int(n.iattr[0]), n.iattr[1], n.in[1], 3, n.in[2], {});
  const bool consumed = n.iattr[2] >> 1 != 0;
  Tensor dhp = Tensor::empty({r.B, 3 * r.H}, n.out.dtype());
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // In place, the input gate gradients overwrite r, z, n in xp's slice and are its gradient.
    const bool in_place = backward_in_place<T>(n, r);
    T* dxp_all = in_place ? ptr<T>(n.in[0]) : grad_ptr<T>(n, 0);
    const Rows<T> dh = n.needs_grad[1] ? rows_of<T>(grad_of(n.in[1])) : Rows<T>{}, h_prev = rows_of<T>(n.in[1]),
                  g = rows_of<T>(n.out.grad());
    k::parallel_for(r.B, parallel_rows(r, 3), [&](int64_t b) {
      if (consumed) prefetch_xp_row(ptr<T>(n.in[0]), r, b, 3);
      int64_t o = b * r.H;
      const T* act = consumed ? ptr<T>(n.in[0]) + r.row(b) : ptr<T>(n.saved) + 4 * o;
      const T* hn = consumed ? ptr<T>(n.saved) + o : act + 3 * r.H;
      T* dxp = dxp_all ? dxp_all + r.row(b) : nullptr;
      k::gru_cell_bwd(dxp, in_place, ptr<T>(dhp) + 3 * o, dh.row(b), act, hn, h_prev.row(b), g.row(b), r.H);
    });
    hidden_product_bwd<T>(n, ptr<T>(dhp), 3 * r.H, 1, 2, grad_ptr<T>(n, 3));
  });
}
}  // namespace detail

}  // namespace seqgrad
