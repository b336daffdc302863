// Shape ops (reshape, transpose, select, slice, concat, stack, squeeze) and embedding, the row gather.
// Dimension legend and conventions: autograd/ops_internal.h.
#include "autograd/ops.h"

#include <algorithm>
#include <cstring>

#include "autograd/ops_internal.h"

namespace seqgrad {
using namespace detail;

Tensor reshape(const Tensor& x, const Shape& shape) {
  check_defined("reshape", x, "x");
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < s.rank(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) throw std::invalid_argument(fmt::format("reshape: more than one -1 in {}", shape));
      infer = i;
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0 && known > 0 && x.numel() % known == 0) s[infer] = x.numel() / known;
  if (s.numel() != x.numel() || (infer >= 0 && s[infer] < 0))
    throw std::invalid_argument(
        fmt::format("reshape: cannot view a tensor of shape {} ({} elements) as {}", x.shape(), x.numel(), shape));
  const bool rows_kept = s.rank() && x.rank() && s[s.rank() - 1] == x.shape()[x.rank() - 1];
  if (!x.contiguous() && !rows_kept)
    throw std::invalid_argument(fmt::format(
        "reshape: a strided row view {} can only be reshaped keeping its last extent, not to {}", x.shape(), s));
  auto impl = new_impl();
  impl->shape = s;
  impl->dtype = x.dtype();
  impl->storage = x.impl().storage;
  impl->offset = x.impl().offset;
  impl->row_stride = x.impl().row_stride;
  Tensor y(std::move(impl));
  if (recording("reshape", {&x}, y)) record({.op = Op::Reshape, .in = {x}, .out = y});
  return y;
}

namespace detail {
void Reshape_bwd(const Node& n) {
  Tensor g = n.out.grad();
  g = (g.contiguous() ? g.detach() : g.clone()).reshape(n.in[0].shape());
  TensorImpl& x = n.in[0].impl();
  if (x.grad)
    accumulate(n.in[0], g);
  else
    x.grad = g.impl_ptr();  // a view of the output's gradient, which the tape drops next: no copy
}

// out = x with axes a0 < a1 swapped; x viewed as (P, n0, Q, n1, S).
template <class T>
void swap_axes(T* out, const T* x, const Shape& s, int a0, int a1, bool acc) {
  int64_t P = 1, Q = 1, S = s.stride(a1), n0 = s[a0], n1 = s[a1];
  for (int i = 0; i < a0; ++i) P *= s[i];
  for (int i = a0 + 1; i < a1; ++i) Q *= s[i];
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < n0; ++i)
      for (int64_t q = 0; q < Q; ++q)
        for (int64_t j = 0; j < n1; ++j) {
          const T* src = x + (((p * n0 + i) * Q + q) * n1 + j) * S;
          T* dst = out + (((p * n1 + j) * Q + q) * n0 + i) * S;
          if (acc)
            k::axpy(dst, T(1), src, S);
          else
            std::memcpy(dst, src, size_t(S) * sizeof(T));
        }
}
}  // namespace detail

Tensor transpose(const Tensor& x, int axis0, int axis1) {
  check_defined("transpose", x, "x");
  int a0 = normalize_axis(axis0, x.rank(), "transpose"), a1 = normalize_axis(axis1, x.rank(), "transpose");
  if (a0 > a1) std::swap(a0, a1);
  Shape s = x.shape();
  std::swap(s[a0], s[a1]);
  Tensor y = Tensor::empty(s, x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (a0 == a1)
      std::memcpy(ptr<T>(y), ptr<T>(x), size_t(x.numel()) * sizeof(T));
    else
      swap_axes(ptr<T>(y), ptr<T>(x), x.shape(), a0, a1, false);
  });
  if (recording("transpose", {&x}, y)) record({.op = Op::Transpose, .in = {x}, .out = y, .iattr = {a0, a1}});
  return y;
}

namespace detail {
void Transpose_bwd(const Node& n) {
  int a0 = int(n.iattr[0]), a1 = int(n.iattr[1]);
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (a0 == a1)
      k::axpy(ptr<T>(grad_of(n.in[0])), T(1), ptr<T>(n.out.grad()), n.out.numel());
    else
      swap_axes(ptr<T>(grad_of(n.in[0])), ptr<T>(n.out.grad()), n.out.shape(), a0, a1, true);
  });
}

// dst = src, or dst += src (acc), over n elements.
template <class T>
void copy_or_add(T* dst, const T* src, int64_t n, bool acc) {
  if (acc)
    k::axpy(dst, T(1), src, n);
  else
    std::memcpy(dst, src, size_t(n) * sizeof(T));
}

// Copies (or accumulates) the block [start, start+len) of `axis` between a big tensor viewed as
// (outer, n, inner) and a small one viewed as (outer, len, inner).
template <class T>
void block_copy(T* small, const T* big, AxisView v, int64_t start, int64_t len, bool to_big, bool acc) {
  int64_t run = len * v.inner;
  for (int64_t o = 0; o < v.outer; ++o) {
    T* s = small + o * run;
    T* b = const_cast<T*>(big) + (o * v.n + start) * v.inner;
    copy_or_add(to_big ? b : s, to_big ? s : b, run, acc);
  }
}

Tensor slice_like(Op op, const Tensor& x, int axis, int64_t start, int64_t len, Shape out_shape) {
  const AxisView v = axis_view(x.shape(), axis);
  Tensor y;
  if (x.contiguous() && v.outer == 1) {  // one contiguous block (a leading axis): a view, as reshape is
    y = row_view(x, start * v.inner, out_shape, out_shape.rank() ? out_shape[out_shape.rank() - 1] : 1);
  } else {
    y = Tensor::empty(out_shape, x.dtype());
    by_dtype(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      block_copy(ptr<T>(y), ptr<T>(x), v, start, len, false, false);
    });
  }
  if (recording(op_name(op), {&x}, y)) record({.op = op, .in = {x}, .out = y, .iattr = {axis, start, len}});
  return y;
}

void slice_like_bwd(const Node& n) {
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    block_copy(ptr<T>(n.out.grad()), ptr<T>(grad_of(n.in[0])), axis_view(n.in[0].shape(), int(n.iattr[0])),
               n.iattr[1], n.iattr[2], true, true);
  });
}
void Select_bwd(const Node& n) { slice_like_bwd(n); }
void Slice_bwd(const Node& n) { slice_like_bwd(n); }
}  // namespace detail

Tensor select(const Tensor& x, int axis, int64_t index) {
  check_defined("select", x, "x");
  int a = normalize_axis(axis, x.rank(), "select");
  if (index < -x.size(a) || index >= x.size(a))
    throw std::invalid_argument(fmt::format("select: index {} is out of range for axis {} of shape {}", index, a, x.shape()));
  if (index < 0) index += x.size(a);
  return slice_like(Op::Select, x, a, index, 1, x.shape().erase(a));
}

Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end) {
  check_defined("slice", x, "x");
  int a = normalize_axis(axis, x.rank(), "slice");
  if (start < 0 || end > x.size(a) || start > end)
    throw std::invalid_argument(
        fmt::format("slice: range [{}, {}) is invalid for axis {} of shape {}", start, end, a, x.shape()));
  Shape s = x.shape();
  s[a] = end - start;
  return slice_like(Op::Slice, x, a, start, end - start, s);
}

namespace detail {
// block_copy for an x that may be a row view: each of its rows of C elements is one contiguous run
// in `big` too (C divides the inner extent, or is the whole axis when that is the last one).
template <class T>
void block_copy_rows(const Tensor& x, int a, T* big, AxisView v, int64_t start, bool to_big, bool acc) {
  const int64_t len = x.shape()[a];
  if (x.contiguous()) return block_copy(static_cast<T*>(x.raw_rows()), big, v, start, len, to_big, acc);
  const int64_t C = x.size(-1), rows = x.numel() / C, ld = x.row_stride();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t f = r * C, o = f / (len * v.inner), i = f / v.inner % len, j = f % v.inner;
    T* b = big + (o * v.n + start + i) * v.inner + j;
    T* xr = static_cast<T*>(x.raw_rows()) + r * ld;
    copy_or_add(to_big ? b : xr, to_big ? xr : b, C, acc);
  }
}

// The result of concat without a copy, when the inputs are row views of one buffer that already
// hold them where the result would: a sequence layer's step states in its output. Else undefined.
Tensor concat_view(std::span<const Tensor> xs, int a, const Shape& s) {
  if (s.rank() != 2 || xs.size() < 2) return {};
  const TensorImpl& first = xs[0].impl();
  int64_t start = 0;
  for (const Tensor& x : xs) {
    const TensorImpl& xi = x.impl();
    const bool rows_fit = a == 1 ? x.row_stride() == s[1] || x.size(0) == 1 : x.contiguous();
    if (xi.storage != first.storage || !rows_fit || xi.offset != first.offset + (a == 1 ? start : start * s[1]))
      return {};
    start += x.shape()[a];
  }
  return detail::row_view(xs[0], 0, s, s[1]);
}
}  // namespace detail

Tensor concat(std::span<const Tensor> xs, int axis) {
  if (xs.empty()) throw std::invalid_argument("concat: no tensors given");
  for (size_t i = 0; i < xs.size(); ++i) check_defined("concat", xs[i], "an input");
  const Tensor& first = xs[0];
  int a = normalize_axis(axis, first.rank(), "concat");
  Shape s = first.shape();
  s[a] = 0;
  bool grad = false;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    check_same_dtype("concat", first, x);
    bool ok = x.rank() == first.rank();
    for (int d = 0; ok && d < x.rank(); ++d) ok = d == a || x.shape()[d] == first.shape()[d];
    if (!ok)
      throw std::invalid_argument(fmt::format("concat: input {} has shape {} but input 0 has shape {}; all axes but {} must match",
                                              i, x.shape(), first.shape(), a));
    s[a] += x.shape()[a];
    grad = records("concat", {&x}) || grad;
  }
  Tensor y = concat_view(xs, a, s);
  if (!y.defined()) {
    y = Tensor::empty(s, first.dtype());
    by_dtype(first.dtype(), [&](auto tag) {
      using T = decltype(tag);
      int64_t start = 0;
      for (const Tensor& x : xs) {
        block_copy_rows(x, a, ptr<T>(y), axis_view(s, a), start, true, false);
        start += x.shape()[a];
      }
    });
  }
  if (recording("concat", {}, y) || grad)  // the inputs were checked one by one above
    record({.op = Op::Concat, .list = {xs.begin(), xs.end()}, .out = y, .iattr = {a}});
  return y;
}

namespace detail {
void Concat_bwd(const Node& n) {
  const int a = int(n.iattr[0]);
  const Tensor g = n.out.grad().contiguous() ? n.out.grad() : n.out.grad().clone();
  const AxisView v = axis_view(n.out.shape(), a);
  int64_t start = 0;
  for (const Tensor& x : n.list) {
    // A non-leaf's first gradient is a view of its block of g, which the tape drops next: no copy.
    // A contiguous block always; a strided one (rows of the last axis) only for an x that is a row
    // view itself, whose producer (a cell) reads such gradients. Leaves keep their own buffer.
    const bool view = !x.is_leaf() && !x.impl().grad && (v.outer == 1 || (v.inner == 1 && !x.contiguous()));
    if (x.requires_grad() && view)
      x.impl().grad = detail::row_view(g, v.outer == 1 ? start * v.inner : start, x.shape(),
                                       v.outer == 1 ? x.size(-1) : v.n).impl_ptr();
    else if (x.requires_grad())
      by_dtype(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        auto [dx, fresh] = grad_slot(x);
        block_copy_rows(dx, a, ptr<T>(g), v, start, false, !fresh);
      });
    start += x.shape()[a];
  }
}
}  // namespace detail

Tensor unsqueeze(const Tensor& x, int axis) {
  check_defined("unsqueeze", x, "x");
  return reshape(x, x.shape().insert(normalize_axis(axis, x.rank() + 1, "unsqueeze"), 1));
}

Tensor squeeze(const Tensor& x, int axis) {
  check_defined("squeeze", x, "x");
  int a = normalize_axis(axis, x.rank(), "squeeze");
  if (x.size(a) != 1)
    throw std::invalid_argument(fmt::format("squeeze: axis {} of shape {} has extent {}, not 1", a, x.shape(), x.size(a)));
  return reshape(x, x.shape().erase(a));
}

Tensor stack(std::span<const Tensor> xs, int axis) {
  if (xs.empty()) throw std::invalid_argument("stack: no tensors given");
  int a = normalize_axis(axis, xs[0].rank() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    if (xs[i].defined() && xs[i].shape() != xs[0].shape())
      throw std::invalid_argument(fmt::format("stack: input {} has shape {} but input 0 has shape {}", i, xs[i].shape(), xs[0].shape()));
    parts.push_back(unsqueeze(xs[i], a));
  }
  return concat(parts, a);
}



Tensor embedding(const Tensor& weight, std::span<const int64_t> indices, const Shape& index_shape) {
  check_defined("embedding", weight, "weight");
  if (weight.rank() != 2)
    throw std::invalid_argument(fmt::format("embedding: weight is {}; expected (V, D)", weight.shape()));
  if (index_shape.numel() != int64_t(indices.size()))
    throw std::invalid_argument(fmt::format("embedding: {} indices do not fill index shape {}", indices.size(), index_shape));
  int64_t D = weight.size(1);
  Tensor saved = index_tensor("embedding", indices, weight.size(0));
  Shape s = index_shape;
  s.push_back(D);
  Tensor y = Tensor::empty(s, weight.dtype());
  by_dtype(weight.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < indices.size(); ++i)
      std::memcpy(ptr<T>(y) + i * D, ptr<T>(weight) + indices[i] * D, size_t(D) * sizeof(T));
  });
  if (recording("embedding", {&weight}, y)) record({.op = Op::Embedding, .in = {weight}, .out = y, .saved = saved});
  return y;
}

namespace detail {
void Embedding_bwd(const Node& n) {
  int64_t D = n.in[0].size(1);
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* dw = ptr<T>(grad_of(n.in[0]));
    const T* g = ptr<T>(n.out.grad());
    for (int64_t i = 0, m = n.saved.numel(); i < m; ++i)
      k::axpy(dw + int64_t(n.saved.data<double>()[i]) * D, T(1), g + i * D, D);
  });
}
}  // namespace detail

}  // namespace seqgrad
