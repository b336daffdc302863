// The SIMD bodies of update.h: one serial loop per functor, templated on the xsimd architecture,
// full batches first and then a scalar tail through the same generic lambda, so the tail computes
// exactly what the vector lanes do. Included by the per-ISA translation units
// update_{avx512,avx2,sse2}.cpp (which define SEQGRAD_OPTIM_KERNEL_TU and instantiate), and by
// update.cpp and tests, which only see the extern declarations.
//
// Each update line matches one line of the torch.optim algorithm it implements (see the optimizer
// headers for the equations); the order of the floating-point operations follows PyTorch's
// in-place calls (mul_ then add_, addcmul_, addcdiv_).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "optim/update.h"

namespace seqgrad::optim::kernels {

struct sgd_kernel {
  template <class Arch, class T> void operator()(Arch, T* p, const T* g, T* buf, int64_t n, const SgdArgs<T>& a) const;
};
struct adam_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamArgs<T>& a) const;
};
struct rmsprop_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* p, const T* g, T* sq, T* gavg, T* buf, int64_t n, const RmspropArgs<T>& a) const;
};
struct adagrad_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* p, const T* g, T* sum, int64_t n, const AdagradArgs<T>& a) const;
};
// mode 0: sum x^2, 1: sum |x|, 2: sum |x|^p, 3: max |x| (NaN-propagating).
struct norm_kernel {
  template <class Arch, class T> T operator()(Arch, const T* x, int64_t n, int mode, T p) const;
};
struct scale_kernel {
  template <class Arch, class T> void operator()(Arch, T* x, T c, int64_t n) const;
};
struct clamp_kernel {
  template <class Arch, class T> void operator()(Arch, T* x, T lo, T hi, int64_t n) const;
};

#define SEQGRAD_OPTIM_KERNELS(PREFIX, Arch, T)                                                                       \
  PREFIX template void sgd_kernel::operator()<Arch, T>(Arch, T*, const T*, T*, int64_t, const SgdArgs<T>&) const;    \
  PREFIX template void adam_kernel::operator()<Arch, T>(Arch, T*, const T*, T*, T*, T*, int64_t, const AdamArgs<T>&) \
      const;                                                                                                         \
  PREFIX template void rmsprop_kernel::operator()<Arch, T>(Arch, T*, const T*, T*, T*, T*, int64_t,                  \
                                                           const RmspropArgs<T>&) const;                             \
  PREFIX template void adagrad_kernel::operator()<Arch, T>(Arch, T*, const T*, T*, int64_t, const AdagradArgs<T>&)   \
      const;                                                                                                         \
  PREFIX template T norm_kernel::operator()<Arch, T>(Arch, const T*, int64_t, int, T) const;                         \
  PREFIX template void scale_kernel::operator()<Arch, T>(Arch, T*, T, int64_t) const;                                \
  PREFIX template void clamp_kernel::operator()<Arch, T>(Arch, T*, T, T, int64_t) const;

#ifndef SEQGRAD_OPTIM_KERNEL_TU
// Keep every other translation unit from instantiating the bodies itself.
SEQGRAD_OPTIM_KERNELS(extern, xsimd::avx512bw, float)
SEQGRAD_OPTIM_KERNELS(extern, xsimd::avx512bw, double)
SEQGRAD_OPTIM_KERNELS(extern, xsimd::fma3<xsimd::avx2>, float)
SEQGRAD_OPTIM_KERNELS(extern, xsimd::fma3<xsimd::avx2>, double)
SEQGRAD_OPTIM_KERNELS(extern, xsimd::sse2, float)
SEQGRAD_OPTIM_KERNELS(extern, xsimd::sse2, double)
#else

namespace detail {

// Calls f(i, V{}) over full batches (V = xsimd::batch<T, Arch>) and then over the tail (V = T).
template <class Arch, class T, class F> inline void for_batches(int64_t n, F&& f) {
  constexpr int64_t w = xsimd::batch<T, Arch>::size;
  int64_t i = 0;
  for (; i + w <= n; i += w) f(i, xsimd::batch<T, Arch>{});
  for (; i < n; ++i) f(i, T{});
}

template <class V, class T> inline V ld(const T* p) {
  if constexpr (std::is_same_v<V, T>) {
    return *p;
  } else {
    return V::load_unaligned(p);
  }
}
template <class V, class T> inline void st(T* p, const V& v) {
  if constexpr (std::is_same_v<V, T>) {
    *p = v;
  } else {
    v.store_unaligned(p);
  }
}

template <class V> inline V vsqrt(const V& x) {
  using std::sqrt;
  using xsimd::sqrt;
  return sqrt(x);
}
template <class V> inline V vabs(const V& x) {
  using std::abs;
  using xsimd::abs;
  return abs(x);
}
// max(a, b) that returns NaN when either is NaN, like torch.maximum.
template <class V> inline V max_nan(const V& a, const V& b) {
  if constexpr (std::is_arithmetic_v<V>) {
    return (b > a || b != b) ? b : a;
  } else {
    return xsimd::select((b > a) | xsimd::isnan(b), b, a);
  }
}
// min(max(x, lo), hi) that keeps NaN, like torch.clamp.
template <class V> inline V vclamp(const V& x, const V& lo, const V& hi) {
  if constexpr (std::is_arithmetic_v<V>) {
    return x < lo ? lo : (x > hi ? hi : x);
  } else {
    return xsimd::select(x < lo, lo, xsimd::select(x > hi, hi, x));
  }
}

// Sum of f(x_i) with four vector accumulators in a fixed order (so a fixed result).
template <class Arch, class T, class F> inline T sum_of(const T* x, int64_t n, F&& f) {
  using B = xsimd::batch<T, Arch>;
  constexpr int64_t w = B::size;
  B a0(T(0)), a1(T(0)), a2(T(0)), a3(T(0));
  int64_t i = 0;
  for (; i + 4 * w <= n; i += 4 * w) {
    a0 += f(B::load_unaligned(x + i));
    a1 += f(B::load_unaligned(x + i + w));
    a2 += f(B::load_unaligned(x + i + 2 * w));
    a3 += f(B::load_unaligned(x + i + 3 * w));
  }
  for (; i + w <= n; i += w) a0 += f(B::load_unaligned(x + i));
  T s = xsimd::hadd((a0 + a1) + (a2 + a3));
  for (; i < n; ++i) s += f(x[i]);
  return s;
}

}  // namespace detail

template <class Arch, class T>
void sgd_kernel::operator()(Arch, T* p, const T* g, T* buf, int64_t n, const SgdArgs<T>& a) const {
  using namespace detail;
  for_batches<Arch, T>(n, [&](int64_t i, auto tag) {
    using V = decltype(tag);
    V pv = ld<V>(p + i), d = ld<V>(g + i);
    if (a.weight_decay != T(0)) d = d + V(a.weight_decay) * pv;  // g + lambda*p
    if (buf) {
      // b = g on the first step, else mu*b + (1 - dampening)*g
      V b = a.first ? d : V(a.momentum) * ld<V>(buf + i) + V(a.one_minus_dampening) * d;
      st(buf + i, b);
      d = a.nesterov ? d + V(a.momentum) * b : b;
    }
    st(p + i, pv - V(a.lr) * d);
  });
}

template <class Arch, class T>
void adam_kernel::operator()(Arch, T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamArgs<T>& a) const {
  using namespace detail;
  for_batches<Arch, T>(n, [&](int64_t i, auto tag) {
    using V = decltype(tag);
    V pv = ld<V>(p + i), gv = ld<V>(g + i);
    if (a.decay != T(1)) pv = pv * V(a.decay);                          // AdamW: p *= 1 - lr*lambda
    if (a.weight_decay != T(0)) gv = gv + V(a.weight_decay) * pv;       // Adam: g + lambda*p
    V mv = V(a.beta1) * ld<V>(m + i) + V(a.one_minus_beta1) * gv;       // first moment
    V vv = V(a.beta2) * ld<V>(v + i) + V(a.one_minus_beta2) * gv * gv;  // second moment
    st(m + i, mv);
    st(v + i, vv);
    if (vmax) {
      vv = max_nan(ld<V>(vmax + i), vv);  // amsgrad: the largest second moment so far
      st(vmax + i, vv);
    }
    // bias-correct both moments: lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
    V denom = vsqrt(vv) / V(a.bc2_sqrt) + V(a.eps);
    st(p + i, pv - V(a.step_size) * mv / denom);
  });
}

template <class Arch, class T>
void rmsprop_kernel::operator()(Arch, T* p, const T* g, T* sq, T* gavg, T* buf, int64_t n,
                                const RmspropArgs<T>& a) const {
  using namespace detail;
  for_batches<Arch, T>(n, [&](int64_t i, auto tag) {
    using V = decltype(tag);
    V pv = ld<V>(p + i), gv = ld<V>(g + i);
    if (a.weight_decay != T(0)) gv = gv + V(a.weight_decay) * pv;
    V s = V(a.alpha) * ld<V>(sq + i) + V(a.one_minus_alpha) * gv * gv;  // v = alpha*v + (1-alpha)*g^2
    st(sq + i, s);
    V avg;
    if (gavg) {
      V ga = V(a.alpha) * ld<V>(gavg + i) + V(a.one_minus_alpha) * gv;  // centered: running mean of g
      st(gavg + i, ga);
      avg = vsqrt(s - ga * ga) + V(a.eps);
    } else {
      avg = vsqrt(s) + V(a.eps);
    }
    if (buf) {
      V b = V(a.momentum) * ld<V>(buf + i) + gv / avg;  // b = mu*b + g/(sqrt(v~) + eps)
      st(buf + i, b);
      st(p + i, pv - V(a.lr) * b);
    } else {
      st(p + i, pv - V(a.lr) * gv / avg);
    }
  });
}

template <class Arch, class T>
void adagrad_kernel::operator()(Arch, T* p, const T* g, T* sum, int64_t n, const AdagradArgs<T>& a) const {
  using namespace detail;
  for_batches<Arch, T>(n, [&](int64_t i, auto tag) {
    using V = decltype(tag);
    V pv = ld<V>(p + i), gv = ld<V>(g + i);
    if (a.weight_decay != T(0)) gv = gv + V(a.weight_decay) * pv;
    V s = ld<V>(sum + i) + gv * gv;  // state_sum += g^2
    st(sum + i, s);
    st(p + i, pv - V(a.clr) * gv / (vsqrt(s) + V(a.eps)));
  });
}

template <class Arch, class T> T norm_kernel::operator()(Arch, const T* x, int64_t n, int mode, T p) const {
  using namespace detail;
  switch (mode) {
    case 0: return sum_of<Arch>(x, n, [](auto v) { return v * v; });
    case 1: return sum_of<Arch>(x, n, [](auto v) { return vabs(v); });
    case 2:
      return sum_of<Arch>(x, n, [p](auto v) {
        using std::pow;
        using xsimd::pow;
        return pow(vabs(v), decltype(v)(p));
      });
    default: break;
  }
  using B = xsimd::batch<T, Arch>;
  constexpr int64_t w = B::size;
  B acc(T(0));
  int64_t i = 0;
  for (; i + w <= n; i += w) acc = max_nan(acc, vabs(B::load_unaligned(x + i)));
  alignas(64) T lanes[w];
  acc.store_aligned(lanes);
  T r = 0;
  for (int64_t j = 0; j < w; ++j) r = max_nan(r, lanes[j]);
  for (; i < n; ++i) r = max_nan(r, vabs(x[i]));
  return r;
}

template <class Arch, class T> void scale_kernel::operator()(Arch, T* x, T c, int64_t n) const {
  using namespace detail;
  for_batches<Arch, T>(n, [&](int64_t i, auto tag) {
    using V = decltype(tag);
    st(x + i, ld<V>(x + i) * V(c));
  });
}

template <class Arch, class T> void clamp_kernel::operator()(Arch, T* x, T lo, T hi, int64_t n) const {
  using namespace detail;
  for_batches<Arch, T>(n, [&](int64_t i, auto tag) {
    using V = decltype(tag);
    st(x + i, vclamp(ld<V>(x + i), V(lo), V(hi)));
  });
}

#endif  // SEQGRAD_OPTIM_KERNEL_TU

}  // namespace seqgrad::optim::kernels
