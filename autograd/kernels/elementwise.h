// Element-wise, unary and reduction kernels over raw arrays. Written once with xsimd
// (elementwise_impl.hpp), compiled per instruction set, dispatched at run time; large arrays are
// split into fixed-size chunks over OpenMP threads. Chunking never depends on the thread count,
// so every result (sums included) is bitwise identical for any number of threads.
// Outputs come first; `d` marks gradients; strides sa/sb are 1 (an array) or 0 (a scalar repeated).
// Accumulating kernels (`+=`) are what backward uses, so fan-out needs no special case.
#pragma once

#include <cstdint>

namespace seqgrad::kernels {

enum class Binary : uint8_t { add, sub, mul, div };
enum class Unary : uint8_t { exp, log, tanh, sigmoid, relu };

template <class T> void binary(Binary op, T* y, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n);
// y += alpha * (a op b); op is mul or div.
template <class T> void binary_acc(Binary op, T alpha, T* y, const T* a, int64_t sa, const T* b, int64_t sb, int64_t n);
template <class T> void unary(Unary op, T* y, const T* x, int64_t n);
// dx += dy * f'(x), written with whichever of x and y = f(x) is cheaper.
template <class T> void unary_bwd(Unary op, T* dx, const T* x, const T* y, const T* dy, int64_t n);
template <class T> void affine(T* y, const T* x, T scale, T shift, int64_t n);  // y = scale*x + shift
template <class T> void pow_scalar(T* y, const T* x, T p, int64_t n);          // y = x^p
template <class T> void pow_scalar_bwd(T* dx, const T* x, T p, const T* dy, int64_t n);  // dx += dy*p*x^(p-1)
template <class T> void axpy(T* y, T alpha, const T* x, int64_t n);            // y += alpha*x
// Binary cross-entropy of logits x against targets t, stable for any |x|:
// y = max(x, 0) - x t + log(1 + exp(-|x|)); its backward dx += dy (sigmoid(x) - t).
template <class T> void bce_logits(T* y, const T* x, const T* t, int64_t n);
template <class T> void bce_logits_bwd(T* dx, const T* x, const T* t, const T* dy, int64_t n);
template <class T> T sum(const T* x, int64_t n);
template <class T> T dot(const T* x, const T* y, int64_t n);  // serial: callers split rows among threads
// y[i * incy] (+)= dot(X row i, v) for `rows` rows of n (row stride ldx), each as dot() sums it. Serial.
template <class T>
void dot_rows(T* y, int64_t incy, const T* X, int64_t ldx, const T* v, int64_t n, int64_t rows, bool accumulate);
// y (n) += a[k * inc] * X row k for k = 0 .. rows-1 in order, as axpy() row by row. Serial.
template <class T> void axpy_rows(T* y, const T* a, int64_t inc, const T* X, int64_t ldx, int64_t n, int64_t rows);
// y (n) += the column sums of X (rows x n, row stride ldx), rows added in order as axpy() adds
// them; threads split the columns, so the bits are the same for any thread count.
template <class T> void column_sums(T* y, const T* X, int64_t ldx, int64_t rows, int64_t n);
template <class T> void fill(T* y, T value, int64_t n);

}  // namespace seqgrad::kernels
