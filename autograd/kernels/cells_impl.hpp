// SIMD bodies of cells.h, written once with xsimd and instantiated per instruction set in
// cells_{avx512,avx2,sse2}.cpp; the dispatching wrappers are in cells.cpp. Equations: cells.h.
#pragma once

#include "autograd/kernels/cells.h"
#include "autograd/kernels/elementwise_impl.hpp"

namespace seqgrad::kernels {

struct rnn_fwd_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* h, const T* xp, bool relu, int64_t H) const;
};
struct rnn_bwd_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* dxp, T* dpre, const T* h, const T* dh, bool relu, int64_t H) const;
};
struct lstm_fwd_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* h, T* c, T* act, const T* xp, const T* c_prev, int64_t H) const;
};
struct lstm_bwd_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* dxp, T* dg, T* dc_prev, const T* act, const T* c_prev, const T* c, const T* dh,
                  const T* dc, int64_t H) const;
};
struct gru_fwd_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* h, T* act, T* hn, const T* xp, const T* hp, const T* h_prev, int64_t H) const;
};
struct gru_bwd_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* dxp, bool store_dxp, T* dhp, T* dh_prev, const T* act, const T* hn, const T* h_prev,
                  const T* dh, int64_t H) const;
};

#ifndef SEQGRAD_KERNEL_TU
#define SEQGRAD_EXTERN_CELLS(Arch, T)                                                                              \
  extern template void rnn_fwd_kernel::operator()<Arch, T>(Arch, T*, const T*, bool, int64_t) const;               \
  extern template void rnn_bwd_kernel::operator()<Arch, T>(Arch, T*, T*, const T*, const T*, bool, int64_t) const; \
  extern template void lstm_fwd_kernel::operator()<Arch, T>(Arch, T*, T*, T*, const T*, const T*, int64_t) const;  \
  extern template void lstm_bwd_kernel::operator()<Arch, T>(Arch, T*, T*, T*, const T*, const T*, const T*,        \
                                                            const T*, const T*, int64_t) const;                   \
  extern template void gru_fwd_kernel::operator()<Arch, T>(Arch, T*, T*, T*, const T*, const T*, const T*,        \
                                                           int64_t) const;                                        \
  extern template void gru_bwd_kernel::operator()<Arch, T>(Arch, T*, bool, T*, T*, const T*, const T*, const T*,   \
                                                           const T*, int64_t) const;
SEQGRAD_EXTERN_CELLS(xsimd::avx512bw, float)
SEQGRAD_EXTERN_CELLS(xsimd::avx512bw, double)
SEQGRAD_EXTERN_CELLS(xsimd::fma3<xsimd::avx2>, float)
SEQGRAD_EXTERN_CELLS(xsimd::fma3<xsimd::avx2>, double)
SEQGRAD_EXTERN_CELLS(xsimd::sse2, float)
SEQGRAD_EXTERN_CELLS(xsimd::sse2, double)
#undef SEQGRAD_EXTERN_CELLS
#else

namespace detail {
// dst[i] += v, skipped when dst is null (that input needs no gradient).
template <class V, class T>
inline void add_to(T* dst, int64_t i, const V& v) {
  if (dst) store(dst, i, load<V>(dst, i, 1) + v);
}
template <class V, class T>
inline V load_or_zero(const T* p, int64_t i) {
  return p ? load<V>(p, i, 1) : V(0);
}
template <class V>
inline V relu_mask(const V& y) {
  if constexpr (std::is_arithmetic_v<V>)
    return y > V(0) ? V(1) : V(0);
  else
    return xsimd::select(y > V(0), V(1), V(0));
}
}  // namespace detail

template <class Arch, class T>
void rnn_fwd_kernel::operator()(Arch, T* h, const T* xp, bool relu, int64_t H) const {
  using namespace detail;
  for_batches<Arch, T>(H, [&](int64_t j, auto v) {
    using V = decltype(v);
    V a = load<V>(h, j, 1) + load<V>(xp, j, 1);
    store(h, j, relu ? detail::relu(a) : tanh_v(a));
  });
}

template <class Arch, class T>
void rnn_bwd_kernel::operator()(Arch, T* dxp, T* dpre, const T* h, const T* dh, bool relu, int64_t H) const {
  using namespace detail;
  for_batches<Arch, T>(H, [&](int64_t j, auto v) {
    using V = decltype(v);
    V y = load<V>(h, j, 1);
    V d = load<V>(dh, j, 1) * (relu ? relu_mask(y) : V(1) - y * y);
    store(dpre, j, d);
    add_to(dxp, j, d);
  });
}

template <class Arch, class T>
void lstm_fwd_kernel::operator()(Arch, T* h, T* c, T* act, const T* xp, const T* c_prev, int64_t H) const {
  using namespace detail;
  for_batches<Arch, T>(H, [&](int64_t j, auto v) {
    using V = decltype(v);
    auto pre = [&](int64_t k) { return load<V>(act + k * H, j, 1) + load_or_zero<V>(xp ? xp + k * H : xp, j); };
    V i = sigmoid(pre(0)), f = sigmoid(pre(1)), g = tanh_v(pre(2)), o = sigmoid(pre(3));
    V cn = f * load<V>(c_prev, j, 1) + i * g;
    store(act, j, i);
    store(act + H, j, f);
    store(act + 2 * H, j, g);
    store(act + 3 * H, j, o);
    store(c, j, cn);
    store(h, j, o * tanh_v(cn));
  });
}

template <class Arch, class T>
void lstm_bwd_kernel::operator()(Arch, T* dxp, T* dg, T* dc_prev, const T* act, const T* c_prev, const T* c,
                                 const T* dh, const T* dc, int64_t H) const {
  using namespace detail;
  for_batches<Arch, T>(H, [&](int64_t j, auto v) {
    using V = decltype(v);
    V i = load<V>(act, j, 1), f = load<V>(act + H, j, 1), g = load<V>(act + 2 * H, j, 1);
    V o = load<V>(act + 3 * H, j, 1), tc = tanh_v(load<V>(c, j, 1));
    V dhv = load_or_zero<V>(dh, j);
    V dcv = load_or_zero<V>(dc, j) + dhv * o * (V(1) - tc * tc);
    V gates[4] = {dcv * g * i * (V(1) - i), dcv * load<V>(c_prev, j, 1) * f * (V(1) - f),
                  dcv * i * (V(1) - g * g), dhv * tc * o * (V(1) - o)};
    for (int k = 0; k < 4; ++k) {
      store(dg + k * H, j, gates[k]);
      add_to(dxp ? dxp + k * H : dxp, j, gates[k]);
    }
    add_to(dc_prev, j, dcv * f);
  });
}

template <class Arch, class T>
void gru_fwd_kernel::operator()(Arch, T* h, T* act, T* hn_out, const T* xp, const T* hp, const T* h_prev,
                                int64_t H) const {
  using namespace detail;
  for_batches<Arch, T>(H, [&](int64_t j, auto v) {
    using V = decltype(v);
    V r = sigmoid(load<V>(xp, j, 1) + load<V>(hp, j, 1));
    V z = sigmoid(load<V>(xp + H, j, 1) + load<V>(hp + H, j, 1));
    V hn = load<V>(hp + 2 * H, j, 1);
    V n = tanh_v(load<V>(xp + 2 * H, j, 1) + r * hn);
    if (act) {  // else inference: xp's lines are only read, and no write-back doubles their traffic
      store(act, j, r);
      store(act + H, j, z);
      store(act + 2 * H, j, n);
      store(hn_out, j, hn);
    }
    store(h, j, n + z * (load<V>(h_prev, j, 1) - n));
  });
}

template <class Arch, class T>
void gru_bwd_kernel::operator()(Arch, T* dxp, bool store_dxp, T* dhp, T* dh_prev, const T* act, const T* hn_in,
                                const T* h_prev, const T* dh, int64_t H) const {
  using namespace detail;
  for_batches<Arch, T>(H, [&](int64_t j, auto v) {
    using V = decltype(v);
    V r = load<V>(act, j, 1), z = load<V>(act + H, j, 1), n = load<V>(act + 2 * H, j, 1);
    V hn = load<V>(hn_in, j, 1), dhv = load<V>(dh, j, 1);
    V dan = dhv * (V(1) - z) * (V(1) - n * n);
    V dar = dan * hn * r * (V(1) - r);
    V daz = dhv * (load<V>(h_prev, j, 1) - n) * z * (V(1) - z);
    if (store_dxp) {  // dxp may be act itself: every load above came first
      store(dxp, j, dar);
      store(dxp + H, j, daz);
      store(dxp + 2 * H, j, dan);
    } else if (dxp) {
      add_to(dxp, j, dar);
      add_to(dxp + H, j, daz);
      add_to(dxp + 2 * H, j, dan);
    }
    store(dhp, j, dar);
    store(dhp + H, j, daz);
    store(dhp + 2 * H, j, dan * r);
    add_to(dh_prev, j, dhv * z);
  });
}

#define SEQGRAD_INSTANTIATE_CELLS(Arch, T)                                                                         \
  template void rnn_fwd_kernel::operator()<Arch, T>(Arch, T*, const T*, bool, int64_t) const;                      \
  template void rnn_bwd_kernel::operator()<Arch, T>(Arch, T*, T*, const T*, const T*, bool, int64_t) const;        \
  template void lstm_fwd_kernel::operator()<Arch, T>(Arch, T*, T*, T*, const T*, const T*, int64_t) const;         \
  template void lstm_bwd_kernel::operator()<Arch, T>(Arch, T*, T*, T*, const T*, const T*, const T*, const T*,     \
                                                     const T*, int64_t) const;                                    \
  template void gru_fwd_kernel::operator()<Arch, T>(Arch, T*, T*, T*, const T*, const T*, const T*, int64_t) const; \
  template void gru_bwd_kernel::operator()<Arch, T>(Arch, T*, bool, T*, T*, const T*, const T*, const T*, const T*, \
                                                    int64_t) const;

#endif  // SEQGRAD_KERNEL_TU

}  // namespace seqgrad::kernels
