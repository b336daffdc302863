// Dense matrix multiply for seqgrad's matmul ops: our own blocked, packed, xsimd kernel (no BLAS).
// Row-major throughout; transposed operands are read in place, never copied out transposed.
#pragma once

#include <cstdint>
#include <type_traits>

#include "autograd/kernels/gemm_bf16.h"

namespace seqgrad::kernels {

// C (M x N, row stride ldc) = beta*C + op(A) * op(B), row-major. op(A) is M x K: A is M x K with row stride lda, or,
// when trans_a, A is K x M (row stride lda) read transposed. op(B) is K x N likewise (trans_b: B is N x K).
// beta is 0 (overwrite; C may hold garbage/NaN) or 1 (accumulate); other values scale C first. bias, when
// not null, holds N values added to every row of C (a Linear layer's b), at no extra pass over C
// when beta is 0. a_sums, when not null, gets += the row sums of op(A): with trans_a, A's column
// sums with the bits of column_sums(), added from each block of A as it is packed (a Linear layer's
// bias gradient taken with its weight gradient g^T x, not in another pass over g); else each row of
// A summed by sum(). Never throws.
// Parallel with OpenMP over output blocks when the work is large enough (serial inside an enclosing
// parallel region); results are bitwise identical for any thread count. Each thread keeps its pack
// buffers (a few MB at most) for the next call, so steady-state calls do not allocate.
//
// Example, y = x W^T for x (B x I) and W (G x I):  gemm<float>(false, true, B, G, I, x, I, W, I, 0.f, y, G);
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc, const T* bias = nullptr, T* a_sums = nullptr);

// op(B) packed once for many products with different A, e.g. an RNN's W_hh over its time steps.
// The layout is the k slices and column panels gemm() builds on every call, so gemm_packed() gives
// bitwise the same C as gemm() with the same B. When op(B) is small enough for gemm()'s direct
// path nothing is packed (packed_size is 0) and gemm_packed() reads B in place.
//
// In bf16 mode (matmul_precision.h) a float PackedB made then holds bfloat16 pairs instead (in the
// same buffer, which is large enough), and its products run in bf16 whatever the mode is later.
template <class T>
struct PackedB {
  bool trans = false;     // op(B) = B^T: B is stored N x K
  int64_t K = 0, N = 0;
  const T* src = nullptr;  // B itself, row stride ldb: read by the direct path, and by gemm_pack_b
  int64_t ldb = 0;
  T* data = nullptr;       // gemm_packed_size<T>(K, N) elements, 64-byte aligned, filled by gemm_pack_b
  bool bf16 = std::is_same_v<T, float> && bf16::enabled();  // the layout gemm_pack_b writes: the mode when made
};

// Elements a PackedB's data needs for op(B) of K x N; 0 when it is not packed.
template <class T>
int64_t gemm_packed_size(int64_t K, int64_t N);
// Fills b.data from b.src (parallel over panels when large).
template <class T>
void gemm_pack_b(const PackedB<T>& b);
// C (M x N) = beta*C + A * op(B) (+ bias), A (M x K, row stride lda) not transposed; as gemm().
template <class T>
void gemm_packed(int64_t M, const T* A, int64_t lda, const PackedB<T>& B, T beta, T* C, int64_t ldc,
                 const T* bias = nullptr);

extern template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t,
                                 float, float*, int64_t, const float*, float*);
extern template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t, const double*,
                                  int64_t, double, double*, int64_t, const double*, double*);
extern template int64_t gemm_packed_size<float>(int64_t, int64_t);
extern template int64_t gemm_packed_size<double>(int64_t, int64_t);
extern template void gemm_pack_b<float>(const PackedB<float>&);
extern template void gemm_pack_b<double>(const PackedB<double>&);
// gemm_packed() with beta 0 but never by the matrix-vector path when M is 1, whose sums run in
// another order: each row of C gets the bits gemm() gives it in any taller product with op(B)
// (a streaming step's share of a sequence's input projection).
template <class T>
void gemm_packed_rows(int64_t M, const T* A, int64_t lda, const PackedB<T>& B, T* C, int64_t ldc, const T* bias = nullptr);
extern template void gemm_packed_rows<float>(int64_t, const float*, int64_t, const PackedB<float>&, float*, int64_t,
                                             const float*);
extern template void gemm_packed_rows<double>(int64_t, const double*, int64_t, const PackedB<double>&, double*, int64_t,
                                              const double*);
extern template void gemm_packed<float>(int64_t, const float*, int64_t, const PackedB<float>&, float, float*, int64_t,
                                        const float*);
extern template void gemm_packed<double>(int64_t, const double*, int64_t, const PackedB<double>&, double, double*,
                                         int64_t, const double*);

}  // namespace seqgrad::kernels
