// matmul and the fused linear; builders next to their backward.
// Dimension legend and conventions: autograd/ops_internal.h.
#include "autograd/ops.h"

#include <algorithm>

#include "autograd/ops_internal.h"

namespace seqgrad {
using namespace detail;

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_defined("matmul", a, "a");
  check_defined("matmul", b, "b");
  check_same_dtype("matmul", a, b);
  bool ok = (a.rank() == 2 && b.rank() == 2) || (a.rank() == 3 && (b.rank() == 2 || (b.rank() == 3 && b.size(0) == a.size(0))));
  if (!ok || a.size(-1) != b.size(-2))
    throw std::invalid_argument(fmt::format(
        "matmul: a is {} but b is {}; expected (M,K)@(K,N), (B,M,K)@(K,N) or (B,M,K)@(B,K,N)", a.shape(), b.shape()));
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  Shape out_shape = a.rank() == 2 ? Shape{M, N} : Shape{a.size(0), M, N};
  Tensor y = Tensor::empty(out_shape, a.dtype());
  by_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (b.rank() == 2)  // (B,M,K)@(K,N) is one (B*M,K)@(K,N) product
      k::gemm<T>(false, false, leading(a.shape()), N, K, ptr<T>(a), K, ptr<T>(b), N, T(0), ptr<T>(y), N);
    else
      for (int64_t i = 0; i < a.size(0); ++i)
        k::gemm<T>(false, false, M, N, K, ptr<T>(a) + i * M * K, K, ptr<T>(b) + i * K * N, N, T(0),
                   ptr<T>(y) + i * M * N, N);
  });
  if (recording("matmul", {&a, &b}, y)) record({.op = Op::Matmul, .in = {a, b}, .out = y});
  return y;
}

namespace detail {
void Matmul_bwd(const Node& n) {
  const Tensor &a = n.in[0], &b = n.in[1];
  Tensor g = n.out.grad();
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  by_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (b.rank() == 2) {
      int64_t R = leading(a.shape());
      if (n.needs_grad[0])  // da (R,K) += g (R,N) @ b^T
        k::gemm<T>(false, true, R, K, N, ptr<T>(g), N, ptr<T>(b), N, T(1), ptr<T>(grad_of(a)), K);
      if (n.needs_grad[1])  // db (K,N) += a^T (K,R) @ g (R,N)
        k::gemm<T>(true, false, K, N, R, ptr<T>(a), K, ptr<T>(g), N, T(1), ptr<T>(grad_of(b)), N);
      return;
    }
    for (int64_t i = 0; i < a.size(0); ++i) {
      const T* gi = ptr<T>(g) + i * M * N;
      if (n.needs_grad[0])
        k::gemm<T>(false, true, M, K, N, gi, N, ptr<T>(b) + i * K * N, N, T(1), ptr<T>(grad_of(a)) + i * M * K, K);
      if (n.needs_grad[1])
        k::gemm<T>(true, false, K, N, M, ptr<T>(a) + i * M * K, K, gi, N, T(1), ptr<T>(grad_of(b)) + i * K * N, N);
    }
  });
}
}  // namespace detail

namespace {
// linear, with W packed beforehand (packed) or by the GEMM as it goes.
Tensor linear_impl(const Tensor& x, const Tensor& w, const PackedWeight* packed, const Tensor& b) {
  check_defined("linear", x, "x");
  check_defined("linear", w, "weight");
  check_same_dtype("linear", x, w);
  if (x.rank() < 1 || w.rank() != 2 || x.size(-1) != w.size(1))
    throw std::invalid_argument(
        fmt::format("linear: x is {} and weight is {}; expected x (..., I) and weight (O, I)", x.shape(), w.shape()));
  int64_t I = w.size(1), O = w.size(0), R = leading(x.shape());
  if (b.defined()) {
    check_same_dtype("linear", x, b);
    if (b.rank() != 1 || b.size(0) != O)
      throw std::invalid_argument(fmt::format("linear: bias is {} but weight is {}; expected bias ({},)", b.shape(), w.shape(), O));
  }
  Shape out_shape = x.shape();
  out_shape[x.rank() - 1] = O;
  Tensor y = Tensor::empty(out_shape, x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (packed)
      k::gemm_packed<T>(R, ptr<T>(x), I, packed->packs()->forward<T>(w), T(0), ptr<T>(y), O, ptr_or_null<T>(b));
    else
      k::gemm<T>(false, true, R, O, I, ptr<T>(x), I, ptr<T>(w), I, T(0), ptr<T>(y), O, ptr_or_null<T>(b));
  });
  if (recording("linear", {&x, &w, &b}, y))
    record({.op = Op::Linear, .in = {x, w, b}, .out = y, .shared = packed ? packed->packs() : nullptr});
  return y;
}
}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) { return linear_impl(x, w, nullptr, b); }
Tensor linear(const Tensor& x, const PackedWeight& w, const Tensor& b) { return linear_impl(x, w.tensor(), &w, b); }

namespace detail {
void Linear_bwd(const Node& n) {
  const Tensor &x = n.in[0], &w = n.in[1];
  Tensor g = n.out.grad();
  int64_t I = w.size(1), O = w.size(0), R = leading(x.shape());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (n.needs_grad[0]) {  // dx (R,I) += g (R,O) @ w (O,I), w packed once per PackedWeight when given one
      auto [dx, fresh] = grad_slot(x);
      auto* packs = static_cast<PackedWeight::Packs*>(n.shared.get());
      if (packs)
        k::gemm_packed<T>(R, ptr<T>(g), O, packs->backward<T>(w), T(!fresh), ptr<T>(dx), I);
      else
        k::gemm<T>(false, false, R, I, O, ptr<T>(g), O, ptr<T>(w), I, T(!fresh), ptr<T>(dx), I);
    }
    T* db = n.needs_grad[2] ? ptr<T>(grad_of(n.in[2])) : nullptr;  // db (O) += column sums of g
    if (n.needs_grad[1]) {  // dw (O,I) += g^T (O,R) @ x (R,I), and db with it
      auto [dw, fresh] = grad_slot(w);
      k::gemm<T>(true, false, O, I, R, ptr<T>(g), O, ptr<T>(x), I, T(!fresh), ptr<T>(dw), I, nullptr, db);
    } else if (db) {
      k::column_sums(db, ptr<T>(g), O, R, O);
    }
  });
}
}  // namespace detail

}  // namespace seqgrad
