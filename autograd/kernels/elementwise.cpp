// Dispatch and threading for elementwise.h: picks the instruction set once per kernel and splits
// long arrays into fixed chunks. Below kParallelMin elements everything runs on the calling
// thread: the example's tensors hold tens of values and a parallel region would cost more.
#include "autograd/kernels/elementwise.h"

#include <algorithm>

#include "autograd/kernels/arch.h"
#include "autograd/kernels/elementwise_impl.hpp"
#include "autograd/kernels/parallel.h"

namespace seqgrad::kernels {


template <class T>
void binary(Binary op, T* y, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n) {
  chunked(n, [&](int64_t s, int64_t e) { dispatched<binary_kernel>()(op, y + s, a + s * sa, sa, b + s * sb, sb, e - s); });
}

template <class T>
void binary_acc(Binary op, T alpha, T* y, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n) {
  chunked(n, [&](int64_t s, int64_t e) {
    dispatched<binary_acc_kernel>()(op, alpha, y + s, a + s * sa, sa, b + s * sb, sb, e - s);
  });
}

template <class T>
void unary(Unary op, T* y, const T* x, int64_t n) {
  chunked(n, [&](int64_t s, int64_t e) { dispatched<unary_kernel>()(op, y + s, x + s, e - s); });
}

template <class T>
void unary_bwd(Unary op, T* dx, const T* x, const T* y, const T* dy, int64_t n) {
  chunked(n, [&](int64_t s, int64_t e) {
    dispatched<unary_bwd_kernel>()(op, dx + s, x ? x + s : nullptr, y ? y + s : nullptr, dy + s, e - s);
  });
}

template <class T>
void affine(T* y, const T* x, T scale, T shift, int64_t n) {
  chunked(n, [&](int64_t s, int64_t e) { dispatched<affine_kernel>()(y + s, x + s, scale, shift, e - s); });
}

template <class T>
void pow_scalar(T* y, const T* x, T p, int64_t n) {
  chunked(n, [&](int64_t s, int64_t e) { dispatched<pow_kernel>()(y + s, x + s, p, e - s); });
}

template <class T>
void pow_scalar_bwd(T* dx, const T* x, T p, const T* dy, int64_t n) {
  chunked(n, [&](int64_t s, int64_t e) { dispatched<pow_bwd_kernel>()(dx + s, x + s, p, dy + s, e - s); });
}

template <class T>
void axpy(T* y, T alpha, const T* x, int64_t n) {
  const T one = 1;
  chunked(n, [&](int64_t s, int64_t e) {
    dispatched<binary_acc_kernel>()(Binary::mul, alpha, y + s, x + s, int64_t(1), &one, int64_t(0), e - s);
  });
}

template <class T>
T sum(const T* x, int64_t n) {
  return chunked_reduce<T>(
      n, [&](int64_t s, int64_t e) { return dispatched<sum_kernel>()(x + s, e - s); }, [](T a, T b) { return a + b; });
}

template <class T>
T dot(const T* x, const T* y, int64_t n) {
  return dispatched<dot_kernel>()(x, y, n);
}

template <class T>
void bce_logits(T* y, const T* x, const T* t, int64_t n) {
  chunked(n, [&](int64_t s, int64_t e) { dispatched<bce_logits_kernel>()(y + s, x + s, t + s, e - s); });
}

template <class T>
void bce_logits_bwd(T* dx, const T* x, const T* t, const T* dy, int64_t n) {
  chunked(n, [&](int64_t s, int64_t e) { dispatched<bce_logits_bwd_kernel>()(dx + s, x + s, t + s, dy + s, e - s); });
}

template <class T>
void dot_rows(T* y, int64_t incy, const T* X, int64_t ldx, const T* v, int64_t n, int64_t rows, bool accumulate) {
  dispatched<dot_rows_kernel>()(y, incy, X, ldx, v, n, rows, accumulate);
}

template <class T>
void axpy_rows(T* y, const T* a, int64_t inc, const T* X, int64_t ldx, int64_t n, int64_t rows) {
  dispatched<axpy_rows_kernel>()(y, a, inc, X, ldx, n, rows);
}

template <class T>
void column_sums(T* y, const T* X, int64_t ldx, int64_t rows, int64_t n) {
  if (n < 16) {  // narrower than a vector (a Linear(H, 1) head's bias): plain loops beat a kernel call per row
    T acc[16];   // in registers: y may alias X as far as the compiler knows, so y[c] += ... would store every row
    std::copy_n(y, n, acc);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < n; ++c) acc[c] += X[r * ldx + c];
    std::copy_n(acc, n, y);
    return;
  }
  constexpr int64_t kCols = 256;
  const T one = 1;
  const int64_t blocks = (n + kCols - 1) / kCols;
  parallel_for(blocks, blocks > 1 && rows * n >= kParallelMin, [&](int64_t c) {
    const int64_t c0 = c * kCols;
    axpy_rows(y + c0, &one, 0, X + c0, ldx, std::min(n, c0 + kCols) - c0, rows);
  });
}

template <class T>
void fill(T* y, T value, int64_t n) {
  std::fill(y, y + n, value);
}

#define SEQGRAD_DEFINE(T)                                                                     \
  template void binary<T>(Binary, T*, const T*, int64_t, const T*, int64_t, int64_t);         \
  template void binary_acc<T>(Binary, T, T*, const T*, int64_t, const T*, int64_t, int64_t);  \
  template void unary<T>(Unary, T*, const T*, int64_t);                                       \
  template void unary_bwd<T>(Unary, T*, const T*, const T*, const T*, int64_t);               \
  template void affine<T>(T*, const T*, T, T, int64_t);                                       \
  template void pow_scalar<T>(T*, const T*, T, int64_t);                                      \
  template void pow_scalar_bwd<T>(T*, const T*, T, const T*, int64_t);                        \
  template void axpy<T>(T*, T, const T*, int64_t);                                            \
  template T sum<T>(const T*, int64_t);                                                       \
  template T dot<T>(const T*, const T*, int64_t);                                             \
  template void bce_logits<T>(T*, const T*, const T*, int64_t);                               \
  template void bce_logits_bwd<T>(T*, const T*, const T*, const T*, int64_t);                  \
  template void dot_rows<T>(T*, int64_t, const T*, int64_t, const T*, int64_t, int64_t, bool); \
  template void axpy_rows<T>(T*, const T*, int64_t, const T*, int64_t, int64_t, int64_t);      \
  template void column_sums<T>(T*, const T*, int64_t, int64_t, int64_t);                       \
  template void fill<T>(T*, T, int64_t);
SEQGRAD_DEFINE(float)
SEQGRAD_DEFINE(double)
#undef SEQGRAD_DEFINE

}  // namespace seqgrad::kernels
