// The SIMD bodies of elementwise.h: one serial loop per functor, templated on the xsimd
// architecture, main loop over full batches then a scalar tail. Included only by the per-ISA
// translation units elementwise_{avx512,avx2,sse2}.cpp, which instantiate them.
#pragma once

#include <cmath>
#include <cstdint>

#include <xsimd/xsimd.hpp>
#include <limits>

#include "autograd/kernels/elementwise.h"

namespace seqgrad::kernels {

struct binary_kernel {
  template <class Arch, class T>
  void operator()(Arch, Binary op, T* y, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n) const;
};
struct binary_acc_kernel {
  template <class Arch, class T>
  void operator()(Arch, Binary op, T alpha, T* y, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n) const;
};
struct unary_kernel {
  template <class Arch, class T>
  void operator()(Arch, Unary op, T* y, const T* x, int64_t n) const;
};
struct unary_bwd_kernel {
  template <class Arch, class T>
  void operator()(Arch, Unary op, T* dx, const T* x, const T* y, const T* dy, int64_t n) const;
};
struct affine_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* y, const T* x, T scale, T shift, int64_t n) const;
};
struct pow_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* y, const T* x, T p, int64_t n) const;
};
struct pow_bwd_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* dx, const T* x, T p, const T* dy, int64_t n) const;
};
struct sum_kernel {
  template <class Arch, class T>
  T operator()(Arch, const T* x, int64_t n) const;
};
struct dot_kernel {
  template <class Arch, class T>
  T operator()(Arch, const T* x, const T* y, int64_t n) const;
};
struct bce_logits_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* y, const T* x, const T* t, int64_t n) const;
};
struct bce_logits_bwd_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* dx, const T* x, const T* t, const T* dy, int64_t n) const;
};
struct dot_rows_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* y, int64_t incy, const T* X, int64_t ldx, const T* v, int64_t n, int64_t rows,
                  bool accumulate) const;
};
struct axpy_rows_kernel {
  template <class Arch, class T>
  void operator()(Arch, T* y, const T* a, int64_t inc, const T* X, int64_t ldx, int64_t n, int64_t rows) const;
};

#ifndef SEQGRAD_KERNEL_TU
// Keep the dispatching translation unit from instantiating the bodies itself.
#define SEQGRAD_EXTERN_ELEMENTWISE(Arch, T)                                                                        \
  extern template void binary_kernel::operator()<Arch, T>(Arch, Binary, T*, const T*, int64_t, const T*, int64_t, \
                                                          int64_t) const;                                         \
  extern template void binary_acc_kernel::operator()<Arch, T>(Arch, Binary, T, T*, const T*, int64_t, const T*,   \
                                                              int64_t, int64_t) const;                            \
  extern template void unary_kernel::operator()<Arch, T>(Arch, Unary, T*, const T*, int64_t) const;              \
  extern template void unary_bwd_kernel::operator()<Arch, T>(Arch, Unary, T*, const T*, const T*, const T*,       \
                                                             int64_t) const;                                      \
  extern template void affine_kernel::operator()<Arch, T>(Arch, T*, const T*, T, T, int64_t) const;              \
  extern template void pow_kernel::operator()<Arch, T>(Arch, T*, const T*, T, int64_t) const;                    \
  extern template void pow_bwd_kernel::operator()<Arch, T>(Arch, T*, const T*, T, const T*, int64_t) const;      \
  extern template T sum_kernel::operator()<Arch, T>(Arch, const T*, int64_t) const;                              \
  extern template T dot_kernel::operator()<Arch, T>(Arch, const T*, const T*, int64_t) const;                    \
  extern template void bce_logits_kernel::operator()<Arch, T>(Arch, T*, const T*, const T*, int64_t) const;      \
  extern template void bce_logits_bwd_kernel::operator()<Arch, T>(Arch, T*, const T*, const T*, const T*,         \
                                                                  int64_t) const;                                 \
  extern template void dot_rows_kernel::operator()<Arch, T>(Arch, T*, int64_t, const T*, int64_t, const T*,       \
                                                            int64_t, int64_t, bool) const;                        \
  extern template void axpy_rows_kernel::operator()<Arch, T>(Arch, T*, const T*, int64_t, const T*, int64_t,      \
                                                             int64_t, int64_t) const;
SEQGRAD_EXTERN_ELEMENTWISE(xsimd::avx512bw, float)
SEQGRAD_EXTERN_ELEMENTWISE(xsimd::avx512bw, double)
SEQGRAD_EXTERN_ELEMENTWISE(xsimd::fma3<xsimd::avx2>, float)
SEQGRAD_EXTERN_ELEMENTWISE(xsimd::fma3<xsimd::avx2>, double)
SEQGRAD_EXTERN_ELEMENTWISE(xsimd::sse2, float)
SEQGRAD_EXTERN_ELEMENTWISE(xsimd::sse2, double)
#undef SEQGRAD_EXTERN_ELEMENTWISE
#else

namespace detail {

// The next narrower instruction set, for tails too short for a full batch (void: none).
template <class Arch>
struct narrower {
  using type = void;
};
template <>
struct narrower<xsimd::avx512bw> {
  using type = xsimd::fma3<xsimd::avx2>;
};
template <>
struct narrower<xsimd::fma3<xsimd::avx2>> {
  using type = xsimd::sse2;
};

// Applies f to full batches from i on, then the tail to narrower batches (16 -> 8 -> 4 floats)
// and last to scalars; f is generic over batch and scalar types. The narrower steps matter for
// small hidden sizes: 8 units would otherwise all take the scalar path, whose std::tanh costs
// more than the rest of an RNN step.
template <class Arch, class T, class F>
inline void for_batches(int64_t n, F&& f, int64_t i = 0) {
  constexpr int64_t w = xsimd::batch<T, Arch>::size;
  for (; i + w <= n; i += w) f(i, xsimd::batch<T, Arch>{});
  using Narrower = typename narrower<Arch>::type;
  if constexpr (!std::is_void_v<Narrower>) {
    if (i < n) for_batches<Narrower, T>(n, f, i);
  } else {
    for (; i < n; ++i) f(i, T{});
  }
}

template <class B, class T>
inline B load(const T* p, int64_t i, int64_t stride) {
  if constexpr (std::is_same_v<B, T>) {
    return p[i * stride];
  } else {
    return stride ? B::load_unaligned(p + i) : B(*p);
  }
}
template <class B, class T>
inline void store(T* p, int64_t i, const B& v) {
  if constexpr (std::is_same_v<B, T>) {
    p[i] = v;
  } else {
    v.store_unaligned(p + i);
  }
}

// float32 batches take their own sigmoid and tanh, built on one exp: xsimd 8.1's tanh evaluates
// both of its branches (a polynomial and an exp-based form) and selects, 1.6x the cost of the
// form below, and the cells' nonlinearities are the largest cost outside the products (a GRU's
// forward at H = 256: 5% faster). Error against double over every 37th float bit pattern: tanh
// <= 2.6 ulp (xsimd's 1.3), sigmoid <= 2.4 ulp (the same as with xsimd's exp). Scalars and double
// keep std:: and xsimd::.
//
// e^x = 2^n (1 + u) for |x| <= 88.38: n = round(x / ln 2) (the 1.5 * 2^23 shifter leaves it in
// k's low mantissa bits), r = x - n ln 2 in two parts, u = e^r - 1 = r + r^2 S(r), S a degree-4
// least-squares-minimax fit on |r| <= ln 2 / 2 (relative error 3e-9). Returns k and u.
template <class A>
struct ExpParts {
  xsimd::batch<float, A> k, u;
};
template <class A>
inline ExpParts<A> exp_parts(const xsimd::batch<float, A>& x) {
  using B = xsimd::batch<float, A>;
  const B shifter(12582912.f);
  const B k = xsimd::fma(x, B(1.44269504088896341f), shifter), n = k - shifter;
  B r = xsimd::fnma(n, B(0.693145751953125f), x);  // ln 2's first 16 bits: n * it is exact
  r = xsimd::fnma(n, B(1.428606765330187e-06f), r);
  B s = xsimd::fma(B(0.001381455173734926f), r, B(0.008368693852087727f));
  s = xsimd::fma(s, r, B(0.04166838706413395f));
  s = xsimd::fma(s, r, B(0.1666652082464935f));
  s = xsimd::fma(s, r, B(0.4999999345751782f));
  return {k, xsimd::fma(s, r * r, r)};
}
// 2^n from exp_parts' k: n's bits shifted into the exponent field (the shifter's own bits fall
// off the top), plus the bias. Valid for -126 <= n <= 127.
template <class A>
inline xsimd::batch<float, A> pow2n(const xsimd::batch<float, A>& k) {
  using I = xsimd::batch<int32_t, A>;
  return xsimd::bitwise_cast<xsimd::batch<float, A>>((xsimd::bitwise_cast<I>(k) << 23) + I(127 << 23));
}

template <class V>
inline V sigmoid(const V& x) {
  using std::exp;
  using xsimd::exp;
  return V(1) / (V(1) + exp(-x));
}
// 1 / (1 + e^-x), e^-x clamped to [e^-87.34, e^88.38]: below x = -88.38 the result stays at
// 4.2e-39 instead of falling through the subnormals to 0.
template <class A>
inline xsimd::batch<float, A> sigmoid(const xsimd::batch<float, A>& x) {
  using B = xsimd::batch<float, A>;
  auto [k, u] = exp_parts(xsimd::max(B(-87.3365f), xsimd::min(B(88.3762f), -x)));  // min/max keep NaN
  return B(1) / (B(1) + (u + B(1)) * pow2n(k));
}
template <class V>
inline V tanh_v(const V& x) {
  using std::tanh;
  using xsimd::tanh;
  return tanh(x);
}
// (e^2x - 1) / (e^2x + 1) with e^2x - 1 = 2^n u + (2^n - 1), which keeps tanh's relative accuracy
// near 0 (no 1 - 1 cancellation). |2x| is clamped at 18.2, where tanh rounds to +-1. x's sign bit
// is or-ed in for tanh(-0) = -0.
template <class A>
inline xsimd::batch<float, A> tanh_v(const xsimd::batch<float, A>& x) {
  using B = xsimd::batch<float, A>;
  auto [k, u] = exp_parts(xsimd::max(B(-18.2f), xsimd::min(B(18.2f), x + x)));
  const B scale = pow2n(k), em = xsimd::fma(u, scale, scale - B(1));
  return xsimd::bitwise_or(em / (em + B(2)), xsimd::bitwise_and(x, B(-0.f)));
}
template <class V>
inline V relu(const V& x) {
  using std::max;
  using xsimd::max;
  return max(x, V(0));
}

// Calls f(std::integral_constant<Binary or Unary, op>{}): the switch stays outside the loop f
// runs, whose body then has its op fixed at compile time.
template <class F>
inline void with_op(Binary op, F&& f) {
  switch (op) {
    case Binary::add: return f(std::integral_constant<Binary, Binary::add>{});
    case Binary::sub: return f(std::integral_constant<Binary, Binary::sub>{});
    case Binary::mul: return f(std::integral_constant<Binary, Binary::mul>{});
    case Binary::div: return f(std::integral_constant<Binary, Binary::div>{});
  }
}
template <class F>
inline void with_op(Unary op, F&& f) {
  switch (op) {
    case Unary::exp: return f(std::integral_constant<Unary, Unary::exp>{});
    case Unary::log: return f(std::integral_constant<Unary, Unary::log>{});
    case Unary::tanh: return f(std::integral_constant<Unary, Unary::tanh>{});
    case Unary::sigmoid: return f(std::integral_constant<Unary, Unary::sigmoid>{});
    case Unary::relu: return f(std::integral_constant<Unary, Unary::relu>{});
  }
}

template <class V>
inline V apply(Binary op, const V& a, const V& b) {
  switch (op) {
    case Binary::add: return a + b;
    case Binary::sub: return a - b;
    case Binary::mul: return a * b;
    case Binary::div: return a / b;
  }
  return a;
}

template <class V>
inline V apply(Unary op, const V& x) {
  using std::exp, std::log;
  using xsimd::exp, xsimd::log;
  switch (op) {
    case Unary::exp: return exp(x);
    case Unary::log: return log(x);
    case Unary::tanh: return tanh_v(x);
    case Unary::sigmoid: return sigmoid(x);
    case Unary::relu: return relu(x);
  }
  return x;
}

template <class V>
inline V derivative(Unary op, const V& x, const V& y) {
  switch (op) {
    case Unary::exp: return y;
    case Unary::log: return V(1) / x;
    case Unary::tanh: return V(1) - y * y;
    case Unary::sigmoid: return y * (V(1) - y);
    case Unary::relu: {
      if constexpr (std::is_arithmetic_v<V>) {
        return x > V(0) ? V(1) : V(0);
      } else {
        return xsimd::select(x > V(0), V(1), V(0));
      }
    }
  }
  return x;
}

}  // namespace detail

template <class Arch, class T>
void binary_kernel::operator()(Arch, Binary op, T* y, const T* a, int64_t sa, const T* b, int64_t sb,
                               int64_t n) const {
  // The op, and the strides of the common case (two full operands), are compile-time constants
  // in the loop: its body is the loads, one instruction and the store.
  detail::with_op(op, [=](auto opc) {
    auto run = [=](auto step_a, auto step_b) {
      detail::for_batches<Arch, T>(n, [=](int64_t i, auto v) {
        using V = decltype(v);
        detail::store(y, i, detail::apply(opc(), detail::load<V>(a, i, step_a), detail::load<V>(b, i, step_b)));
      });
    };
    if (sa == 1 && sb == 1)
      run(std::integral_constant<int64_t, 1>{}, std::integral_constant<int64_t, 1>{});
    else
      run(sa, sb);
  });
}

template <class Arch, class T>
void binary_acc_kernel::operator()(Arch, Binary op, T alpha, T* y, const T* a, int64_t sa, const T* b, int64_t sb,
                                   int64_t n) const {
  detail::with_op(op, [=](auto opc) {
    detail::for_batches<Arch, T>(n, [=](int64_t i, auto v) {
      using V = decltype(v);
      V r = detail::apply(opc(), detail::load<V>(a, i, sa), detail::load<V>(b, i, sb));
      detail::store(y, i, detail::load<V>(y, i, 1) + V(alpha) * r);
    });
  });
}

template <class Arch, class T>
void unary_kernel::operator()(Arch, Unary op, T* y, const T* x, int64_t n) const {
  detail::with_op(op, [=](auto opc) {
    detail::for_batches<Arch, T>(n, [=](int64_t i, auto v) {
      using V = decltype(v);
      detail::store(y, i, detail::apply(opc(), detail::load<V>(x, i, 1)));
    });
  });
}

template <class Arch, class T>
void unary_bwd_kernel::operator()(Arch, Unary op, T* dx, const T* x, const T* y, const T* dy, int64_t n) const {
  detail::with_op(op, [=](auto opc) {
    // Ops whose derivative needs only y are given x == nullptr, and the reverse.
    constexpr bool from_x = opc() == Unary::log || opc() == Unary::relu;
    detail::for_batches<Arch, T>(n, [=](int64_t i, auto v) {
      using V = decltype(v);
      const V xv = from_x ? detail::load<V>(x, i, 1) : V(0), yv = from_x ? V(0) : detail::load<V>(y, i, 1);
      detail::store(dx, i, detail::load<V>(dx, i, 1) + detail::load<V>(dy, i, 1) * detail::derivative(opc(), xv, yv));
    });
  });
}

template <class Arch, class T>
void affine_kernel::operator()(Arch, T* y, const T* x, T scale, T shift, int64_t n) const {
  detail::for_batches<Arch, T>(n, [&](int64_t i, auto v) {
    using V = decltype(v);
    detail::store(y, i, detail::load<V>(x, i, 1) * V(scale) + V(shift));
  });
}

namespace detail {
// x^p as C's pow has it. xsimd 8.1's pow gives 0 for 0^p with p <= 0, where C and PyTorch give 1
// for p = 0 and inf for p < 0 (-inf for -0 to an odd power): 1 / x of a zero would silently be 0.
template <class V, class T>
V pow(V x, T p) {
  if constexpr (std::is_same_v<V, T>) {
    return std::pow(x, p);
  } else {
    if (p == 0) return V(T(1));
    V r = xsimd::pow(x, V(p));
    if (p > 0) return r;
    const bool odd = std::trunc(p) == p && std::fmod(p, T(2)) != 0;
    const V inf(std::numeric_limits<T>::infinity());
    return xsimd::select(x == V(T(0)), odd ? xsimd::copysign(inf, x) : inf, r);
  }
}
}  // namespace detail

template <class Arch, class T>
void pow_kernel::operator()(Arch, T* y, const T* x, T p, int64_t n) const {
  detail::for_batches<Arch, T>(n, [&](int64_t i, auto v) {
    using V = decltype(v);
    detail::store(y, i, detail::pow(detail::load<V>(x, i, 1), p));
  });
}

template <class Arch, class T>
void pow_bwd_kernel::operator()(Arch, T* dx, const T* x, T p, const T* dy, int64_t n) const {
  detail::for_batches<Arch, T>(n, [&](int64_t i, auto v) {
    using V = decltype(v);
    V d = V(p) * detail::pow(detail::load<V>(x, i, 1), p - 1);
    detail::store(dx, i, detail::load<V>(dx, i, 1) + detail::load<V>(dy, i, 1) * d);
  });
}

namespace detail {
// sum_i x[i] (Y null) or sum_i x[i]*y[i]. Four independent accumulators hide the add latency;
// their order is fixed, so is the result.
template <class Arch, class T>
T reduce(const T* x, const T* y, int64_t n) {
  using B = xsimd::batch<T, Arch>;
  constexpr int64_t w = B::size;
  auto term = [&](int64_t i) {
    return y ? B::load_unaligned(x + i) * B::load_unaligned(y + i) : B::load_unaligned(x + i);
  };
  B acc0(T(0)), acc1(T(0)), acc2(T(0)), acc3(T(0));
  int64_t i = 0;
  for (; i + 4 * w <= n; i += 4 * w) {
    acc0 += term(i);
    acc1 += term(i + w);
    acc2 += term(i + 2 * w);
    acc3 += term(i + 3 * w);
  }
  for (; i + w <= n; i += w) acc0 += term(i);
  T s = xsimd::hadd((acc0 + acc1) + (acc2 + acc3));
  // The tail in narrower batches: a row of 8 (a Linear(8, 1) head's dot) is one 8-wide product
  // rather than 8 dependent scalar steps.
  for_batches<Arch, T>(
      n,
      [&](int64_t j, auto v) {
        using V = decltype(v);
        const V t = y ? load<V>(x, j, 1) * load<V>(y, j, 1) : load<V>(x, j, 1);
        if constexpr (std::is_arithmetic_v<V>)
          s += t;
        else
          s += xsimd::hadd(t);
      },
      i);
  return s;
}
}  // namespace detail

template <class Arch, class T>
T sum_kernel::operator()(Arch, const T* x, int64_t n) const {
  return detail::reduce<Arch, T>(x, nullptr, n);
}

template <class Arch, class T>
T dot_kernel::operator()(Arch, const T* x, const T* y, int64_t n) const {
  return detail::reduce<Arch, T>(x, y, n);
}

template <class Arch, class T>
void bce_logits_kernel::operator()(Arch, T* y, const T* x, const T* t, int64_t n) const {
  detail::for_batches<Arch, T>(n, [&](int64_t i, auto v) {
    using V = decltype(v);
    using std::abs, std::exp, std::log1p, std::max;
    using xsimd::abs, xsimd::exp, xsimd::log1p, xsimd::max;
    const V xi = detail::load<V>(x, i, 1);
    detail::store(y, i, max(xi, V(0)) - xi * detail::load<V>(t, i, 1) + log1p(exp(-abs(xi))));
  });
}

template <class Arch, class T>
void bce_logits_bwd_kernel::operator()(Arch, T* dx, const T* x, const T* t, const T* dy, int64_t n) const {
  detail::for_batches<Arch, T>(n, [&](int64_t i, auto v) {
    using V = decltype(v);
    const V d = detail::load<V>(dy, i, 1) * (detail::sigmoid(detail::load<V>(x, i, 1)) - detail::load<V>(t, i, 1));
    detail::store(dx, i, detail::load<V>(dx, i, 1) + d);
  });
}

// The row loops of the matrix-vector products live here rather than around dot() and axpy():
// a Linear(H, 1) head over B*T rows of H = 8 paid a dispatched call per row, more than its FMAs.
template <class Arch, class T>
void dot_rows_kernel::operator()(Arch, T* y, int64_t incy, const T* X, int64_t ldx, const T* v, int64_t n,
                                 int64_t rows, bool accumulate) const {
  for (int64_t i = 0; i < rows; ++i) {
    const T d = detail::reduce<Arch, T>(X + i * ldx, v, n);
    y[i * incy] = accumulate ? y[i * incy] + d : d;
  }
}

template <class Arch, class T>
void axpy_rows_kernel::operator()(Arch, T* y, const T* a, int64_t inc, const T* X, int64_t ldx, int64_t n,
                                  int64_t rows) const {
  const T one = 1;
  for (int64_t k = 0; k < rows; ++k)
    binary_acc_kernel{}.operator()<Arch, T>(Arch{}, Binary::mul, a[k * inc], y, X + k * ldx, 1, &one, 0, n);
}

#define SEQGRAD_INSTANTIATE_ELEMENTWISE(Arch, T)                                                                 \
  template void binary_kernel::operator()<Arch, T>(Arch, Binary, T*, const T*, int64_t, const T*, int64_t,      \
                                                   int64_t) const;                                              \
  template void binary_acc_kernel::operator()<Arch, T>(Arch, Binary, T, T*, const T*, int64_t, const T*,        \
                                                       int64_t, int64_t) const;                                 \
  template void unary_kernel::operator()<Arch, T>(Arch, Unary, T*, const T*, int64_t) const;                    \
  template void unary_bwd_kernel::operator()<Arch, T>(Arch, Unary, T*, const T*, const T*, const T*, int64_t)   \
      const;                                                                                                    \
  template void affine_kernel::operator()<Arch, T>(Arch, T*, const T*, T, T, int64_t) const;                    \
  template void pow_kernel::operator()<Arch, T>(Arch, T*, const T*, T, int64_t) const;                          \
  template void pow_bwd_kernel::operator()<Arch, T>(Arch, T*, const T*, T, const T*, int64_t) const;            \
  template T sum_kernel::operator()<Arch, T>(Arch, const T*, int64_t) const;                                     \
  template T dot_kernel::operator()<Arch, T>(Arch, const T*, const T*, int64_t) const;                           \
  template void bce_logits_kernel::operator()<Arch, T>(Arch, T*, const T*, const T*, int64_t) const;             \
  template void bce_logits_bwd_kernel::operator()<Arch, T>(Arch, T*, const T*, const T*, const T*, int64_t)      \
      const;                                                                                                    \
  template void dot_rows_kernel::operator()<Arch, T>(Arch, T*, int64_t, const T*, int64_t, const T*, int64_t,    \
                                                     int64_t, bool) const;                                       \
  template void axpy_rows_kernel::operator()<Arch, T>(Arch, T*, const T*, int64_t, const T*, int64_t, int64_t,   \
                                                      int64_t) const;

#endif  // SEQGRAD_KERNEL_TU

}  // namespace seqgrad::kernels
