// Reductions: sum, mean, softmax, log_softmax.
// Dimension legend and conventions: autograd/ops_internal.h.
#include "autograd/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/ops_internal.h"

namespace seqgrad {
using namespace detail;

Tensor sum(const Tensor& x) {
  check_defined("sum", x, "x");
  Tensor y = Tensor::empty(Shape{}, x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    *ptr<T>(y) = k::sum(ptr<T>(x), x.numel());
  });
  if (recording("sum", {&x}, y)) record({.op = Op::SumAll, .in = {x}, .out = y});
  return y;
}

namespace detail {
void SumAll_bwd(const Node& n) {
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T zero = 0;
    k::binary_acc(k::Binary::add, T(1), ptr<T>(grad_of(n.in[0])), ptr<T>(n.out.grad()), 0, &zero, 0, n.in[0].numel());
  });
}
}  // namespace detail

Tensor sum(const Tensor& x, int axis, bool keepdim) {
  check_defined("sum", x, "x");
  int a = normalize_axis(axis, x.rank(), "sum");
  Shape s = x.shape();
  s[a] = 1;
  Tensor y = Tensor::empty(keepdim ? s : x.shape().erase(a), x.dtype());
  AxisView v = axis_view(x.shape(), a);
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = ptr<T>(x);
    T* py = ptr<T>(y);
    for (int64_t o = 0; o < v.outer; ++o) {
      if (v.inner == 1) {
        py[o] = k::sum(px + o * v.n, v.n);
        continue;
      }
      T* row = py + o * v.inner;
      std::fill(row, row + v.inner, T(0));
      for (int64_t i = 0; i < v.n; ++i) k::axpy(row, T(1), px + (o * v.n + i) * v.inner, v.inner);
    }
  });
  if (recording("sum", {&x}, y)) record({.op = Op::SumAxis, .in = {x}, .out = y, .iattr = {a}});
  return y;
}

namespace detail {
void SumAxis_bwd(const Node& n) {
  AxisView v = axis_view(n.in[0].shape(), int(n.iattr[0]));
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* dx = ptr<T>(grad_of(n.in[0]));
    const T* g = ptr<T>(n.out.grad());
    const T zero = 0;
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.n; ++i) {
        T* d = dx + (o * v.n + i) * v.inner;
        if (v.inner == 1)
          *d += g[o];
        else
          k::binary_acc(k::Binary::add, T(1), d, g + o * v.inner, 1, &zero, 0, v.inner);
      }
  });
}
}  // namespace detail

Tensor mean(const Tensor& x) {
  check_defined("mean", x, "x");
  if (x.numel() == 0) throw std::invalid_argument(fmt::format("mean: tensor of shape {} is empty", x.shape()));
  return mul(sum(x), 1.0 / double(x.numel()));
}

Tensor mean(const Tensor& x, int axis, bool keepdim) {
  check_defined("mean", x, "x");
  int64_t n = x.size(axis);
  if (n == 0) throw std::invalid_argument(fmt::format("mean: axis {} of shape {} is empty", axis, x.shape()));
  return mul(sum(x, axis, keepdim), 1.0 / double(n));
}

namespace detail {
// Softmax or log-softmax of each run along `axis` (stride `inner`), max-shifted for stability.
template <class T>
void softmax_rows(T* y, const T* x, AxisView v, bool log_space) {
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t i = 0; i < v.inner; ++i) {
      const T* xr = x + o * v.n * v.inner + i;
      T* yr = y + o * v.n * v.inner + i;
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < v.n; ++j) m = std::max(m, xr[j * v.inner]);
      T s = 0;
      for (int64_t j = 0; j < v.n; ++j) s += std::exp(xr[j * v.inner] - m);
      T ls = std::log(s);
      for (int64_t j = 0; j < v.n; ++j) {
        T z = xr[j * v.inner] - m;
        yr[j * v.inner] = log_space ? z - ls : std::exp(z) / s;
      }
    }
}

Tensor softmax_op(Op op, const Tensor& x, int axis) {
  check_defined(op_name(op), x, "x");
  int a = normalize_axis(axis, x.rank(), op_name(op));
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    softmax_rows(ptr<T>(y), ptr<T>(x), axis_view(x.shape(), a), op == Op::LogSoftmax);
  });
  if (recording(op_name(op), {&x}, y)) record({.op = op, .in = {x}, .out = y, .iattr = {a}});
  return y;
}

// softmax: dx += y * (g - sum(g*y)); log_softmax: dx += g - exp(y) * sum(g).
void softmax_grad(const Node& n, bool log_space) {
  AxisView v = axis_view(n.out.shape(), int(n.iattr[0]));
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* dx = ptr<T>(grad_of(n.in[0]));
    const T* g = ptr<T>(n.out.grad());
    const T* y = ptr<T>(n.out);
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.inner; ++i) {
        int64_t base = o * v.n * v.inner + i;
        T dot = 0;
        for (int64_t j = 0; j < v.n; ++j) {
          int64_t e = base + j * v.inner;
          dot += log_space ? g[e] : g[e] * y[e];
        }
        for (int64_t j = 0; j < v.n; ++j) {
          int64_t e = base + j * v.inner;
          dx[e] += log_space ? g[e] - std::exp(y[e]) * dot : y[e] * (g[e] - dot);
        }
      }
  });
}
void Softmax_bwd(const Node& n) { softmax_grad(n, false); }
void LogSoftmax_bwd(const Node& n) { softmax_grad(n, true); }
}  // namespace detail

Tensor softmax(const Tensor& x, int axis) { return softmax_op(Op::Softmax, x, axis); }
Tensor log_softmax(const Tensor& x, int axis) { return softmax_op(Op::LogSoftmax, x, axis); }

}  // namespace seqgrad
