// Dense matrix multiply for seqgrad's matmul ops: our own blocked, packed, xsimd kernel (no BLAS).
// Row-major throughout; transposed operands are read in place, never copied out transposed.
#pragma once

#include <cstdint>

namespace seqgrad::kernels {

// C (M x N, row stride ldc) = beta*C + op(A) * op(B), row-major. op(A) is M x K: A is M x K with row stride lda, or,
// when trans_a, A is K x M (row stride lda) read transposed. op(B) is K x N likewise (trans_b: B is N x K).
// beta is 0 (overwrite; C may hold garbage/NaN) or 1 (accumulate); other values scale C first. Never throws.
// Parallel with OpenMP over output blocks when the work is large enough (serial inside an enclosing
// parallel region); results are bitwise identical for any thread count. Each thread keeps its pack
// buffers (a few MB at most) for the next call, so steady-state calls do not allocate.
//
// Example, y = x W^T for x (B x I) and W (G x I):  gemm<float>(false, true, B, G, I, x, I, W, I, 0.f, y, G);
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc);

extern template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t,
                                 float, float*, int64_t);
extern template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t, const double*,
                                  int64_t, double, double*, int64_t);

}  // namespace seqgrad::kernels
