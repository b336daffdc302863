// GEMM building blocks written once over xsimd::batch<T, Arch>: the register tile per architecture,
// operand packing, the micro-kernel that sweeps one packed block of C, and a direct path for small
// products. The driver (gemm.cpp) owns blocking, buffers and threads.
//
// Packed layouts for a block of mc rows, nc columns and kc <= gemm_kc_max<T> steps of K:
//   A, op(A) stored row-major (!trans_a): panels of MR rows, panel p at pa + p*MR*kc_max, row r at
//     [r*kc_max, r*kc_max + kc). A plain copy of A's rows; the fixed stride makes the kernel's
//     broadcasts immediate-offset loads.
//   A, trans_a: panels of MR rows, panel p at pa + p*MR*kc, element (r, k) at [k*MR + r]: again a
//     plain copy, of A's rows of length MR.
//   B: panels of NR columns, panel q at pb + q*NR*kc, element (k, c) at [k*NR + c], zero-padded.
//     A copy of B's rows, or for trans_b a transpose in registers.
// So no transpose is ever materialised, and only op(B) = B^T needs shuffles.
//
// Every element of C is one FMA chain over the block's k in order, whatever tile or path it falls
// in, so the driver's results do not depend on how it splits C among threads.
//
// Definitions are out of class and instantiated per ISA in gemm_{avx512,avx2,sse2}.cpp (built with
// that ISA's -march); the extern templates at the end keep other translation units from
// instantiating them. Helpers are templated on Arch so that no inline function is compiled with
// different -march flags under one name. Nothing throws: xsimd's dispatcher is noexcept.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "autograd/kernels/arch.h"

namespace seqgrad::kernels {

// Register tile: `rows` rows of op(A) broadcast against `vectors` batches of op(B) columns.
// Accumulators are rows*vectors registers, plus `vectors` for B and one broadcast.
template <class Arch, class T>
struct GemmTile {  // sse2: 16 xmm and no FMA, so keep room for the product temporaries
  static constexpr int rows = 4, vectors = 2;
};
template <class T>
struct GemmTile<xsimd::fma3<xsimd::avx2>, T> {  // 16 ymm: 12 accumulators + 2 B + 1 broadcast
  static constexpr int rows = 6, vectors = 2;
};
template <class T>
struct GemmTile<xsimd::avx512bw, T> {  // 32 zmm: 28 accumulators + 2 B + 1 broadcast
  static constexpr int rows = 14, vectors = 2;
};

// Longest k slice: an MR x kc A panel (~21 KB for 14 rows) stays in a 48 KB L1 while B streams past.
template <class T>
inline constexpr int64_t gemm_kc_max = 1536 / sizeof(T);

// Small products take the direct path only when op(B) has at most this many elements.
inline constexpr int64_t gemm_small_b_max = 4096;

struct GemmTileSize {
  int64_t mr, nr;
};

// The tile size the dispatcher's architecture uses; the T* argument only selects the type.
struct gemm_tile_size {
  template <class Arch, class T>
  GemmTileSize operator()(Arch, const T*) const noexcept;
};

// op(A) rows [0, mc) x k [0, kc) -> packed A. `a` points at op(A)(0, 0); trans: A is stored K x M.
// dst holds ceil(mc/MR)*MR*kc_max elements.
struct gemm_pack_a_kernel {
  template <class Arch, class T>
  void operator()(Arch, bool trans, const T* a, int64_t lda, int64_t mc, int64_t kc, T* dst) const noexcept;
};

// op(B) k [0, kc) x columns [0, nc) -> packed B. `b` points at op(B)(0, 0); trans: B is stored N x K.
// dst holds ceil(nc/NR)*NR*kc elements.
struct gemm_pack_b_kernel {
  template <class Arch, class T>
  void operator()(Arch, bool trans, const T* b, int64_t ldb, int64_t kc, int64_t nc, T* dst) const noexcept;
};

// C[0:mc, 0:nc] = (accumulate ? C : bias) + packed A * packed B, one register tile at a time: the A
// panel stays in L1 while the B panels stream from L2. trans_a names the packed A layout. bias
// (nc values, or null for zeros) seeds the accumulators, so adding it costs no pass over C.
struct gemm_micro_kernel {
  template <class Arch, class T>
  void operator()(Arch, bool trans_a, int64_t mc, int64_t nc, int64_t kc, const T* pa, const T* pb, T* c,
                  int64_t ldc, bool accumulate, const T* bias) const noexcept;
};

// Whole product without blocking or heap buffers, for K * N <= gemm_small_b_max: op(A) and op(B)
// are read in place, except that B^T is first copied out to the stack.
struct gemm_small_kernel {
  template <class Arch, class T>
  void operator()(Arch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                  const T* B, int64_t ldb, bool accumulate, T* C, int64_t ldc) const noexcept;
};

namespace detail {

// The register tiles and small-path strips skip AddressSanitizer: it keeps their accumulator
// arrays in memory and makes each one take minutes to compile. They only read packed buffers and
// rows of A and B, and write C, within bounds their callers fix (and the tests check).
#define SEQGRAD_GEMM_NO_ASAN __attribute__((no_sanitize("address")))

// Rows x (vectors*W) tile of C over kc steps. Rows < MR serves the last panel of a block at the
// cost of its own rows only. The C rows are prefetched into L2 up front: the B panel streaming
// through L1 would evict them before the final read-modify-write.
template <class Arch, class T, int Rows, bool RowPanel>
SEQGRAD_GEMM_NO_ASAN void gemm_register_tile(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, bool accumulate,
                                             const T* bias) noexcept {
  using Batch = xsimd::batch<T, Arch>;
  constexpr int mr = GemmTile<Arch, T>::rows, vecs = GemmTile<Arch, T>::vectors, w = int(Batch::size);
  constexpr int64_t row_stride = RowPanel ? gemm_kc_max<T> : 1, k_stride = RowPanel ? 1 : mr;
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < vecs * w; v += 64 / int(sizeof(T))) __builtin_prefetch(c + r * ldc + v, 1, 2);
  Batch init[vecs], acc[Rows][vecs];
#pragma GCC unroll 4
  for (int v = 0; v < vecs; ++v) init[v] = bias ? Batch::load_unaligned(bias + v * w) : Batch(T(0));
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < vecs; ++v) acc[r][v] = init[v];
  for (int64_t k = 0; k < kc; ++k, a += k_stride, b += vecs * w) {
    Batch bk[vecs];
#pragma GCC unroll 4
    for (int v = 0; v < vecs; ++v) bk[v] = Batch::load_aligned(b + v * w);
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) {
      const Batch ar(a[r * row_stride]);
#pragma GCC unroll 4
      for (int v = 0; v < vecs; ++v) acc[r][v] = xsimd::fma(ar, bk[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < vecs; ++v) {
      T* p = c + r * ldc + v * w;
      (accumulate ? acc[r][v] + Batch::load_unaligned(p) : acc[r][v]).store_unaligned(p);
    }
}

template <class T>
using GemmTileFn = void (*)(int64_t, const T*, const T*, T*, int64_t, bool, const T*) noexcept;

// tiles[row_panel][r - 1] computes r rows.
template <class Arch, class T, int... R>
constexpr std::array<std::array<GemmTileFn<T>, sizeof...(R)>, 2> gemm_tile_table(std::integer_sequence<int, R...>) {
  return {{{&gemm_register_tile<Arch, T, R + 1, false>...}, {&gemm_register_tile<Arch, T, R + 1, true>...}}};
}

// dst[k*W + c] = src[c*ld + k]: W rows of length kc side by side. Written as scalar loops because
// GCC turns the unrolled c loop into an in-register transpose (vpermt2ps on AVX-512), which xsimd
// 8.1 cannot express portably (its zip_lo/zip_hi stay within 128-bit lanes).
template <class Arch, int W, class T>
void gemm_transpose_panel(const T* __restrict src, int64_t ld, int64_t kc, T* __restrict dst) noexcept {
  for (int64_t k = 0; k < kc; ++k)
#pragma GCC unroll 32
    for (int c = 0; c < W; ++c) dst[k * W + c] = src[c * ld + k];
}

// p[0:cols] = (accumulate ? p : 0) + part[0:cols], cols < W: the ragged right edge of C, where a
// whole-batch store would write past the row. A fixed-trip loop, so GCC emits plain stores rather
// than a memcpy call.
template <class Arch, int W, class T>
void gemm_store_part(T* p, const T* part, int64_t cols, bool accumulate) noexcept {
#pragma GCC unroll 16
  for (int q = 0; q < W; ++q)
    if (q < cols) p[q] = accumulate ? p[q] + part[q] : part[q];
}

// Small path: columns go in whole batches of Arch, the rest in narrower batches, the last few as
// scalars, so that no store needs a mask. Top, the dispatched arch, stays a template parameter so
// that e.g. the avx2 code instantiated from the AVX-512 file is its own function.
template <class Arch>
struct GemmNarrower {
  using type = void;
};
template <>
struct GemmNarrower<xsimd::avx512bw> {
  using type = xsimd::fma3<xsimd::avx2>;
};
template <>
struct GemmNarrower<xsimd::fma3<xsimd::avx2>> {
  using type = xsimd::sse2;
};

// Rows x Vecs batches of C, op(A) read in place: Rows*Vecs independent FMA chains, and each
// broadcast of A feeds Vecs of them.
template <class Top, class Arch, class T, bool TransA, int Rows, int Vecs>
SEQGRAD_GEMM_NO_ASAN void gemm_small_strip(int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
                                           int64_t ldc, bool accumulate) noexcept {
  using Batch = xsimd::batch<T, Arch>;
  constexpr int w = int(Batch::size);
  Batch acc[Rows][Vecs];
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < Vecs; ++v) acc[r][v] = Batch(T(0));
  for (int64_t k = 0; k < K; ++k) {
    Batch bk[Vecs];
#pragma GCC unroll 2
    for (int v = 0; v < Vecs; ++v) bk[v] = Batch::load_unaligned(b + k * ldb + v * w);
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) {
      const Batch ar(TransA ? a[k * lda + r] : a[r * lda + k]);
#pragma GCC unroll 2
      for (int v = 0; v < Vecs; ++v) acc[r][v] = xsimd::fma(ar, bk[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < Vecs; ++v) {
      T* p = c + r * ldc + v * w;
      (accumulate ? acc[r][v] + Batch::load_unaligned(p) : acc[r][v]).store_unaligned(p);
    }
}

template <class T>
using GemmStripFn = void (*)(int64_t, const T*, int64_t, const T*, int64_t, T*, int64_t, bool) noexcept;

// strips[r - 1] computes r rows, so that a few leftover rows do not cost a whole pass of MR.
template <class Top, class Arch, class T, bool TransA, int Vecs, int... R>
constexpr std::array<GemmStripFn<T>, sizeof...(R)> gemm_strip_table(std::integer_sequence<int, R...>) {
  return {&gemm_small_strip<Top, Arch, T, TransA, R + 1, Vecs>...};
}

// Columns [0, n) of the small path with strips of Vecs batches of Arch; the rest goes to fewer
// batches, then to narrower ones (which only serve the last few columns: fewer row counts, less
// code), then to scalars.
template <class Top, class Arch, class T, bool TransA, int Vecs = GemmTile<Top, T>::vectors>
void gemm_small_columns(int64_t M, int64_t n, int64_t K, const T* A, int64_t lda, const T* b, int64_t ldb,
                        bool accumulate, T* C, int64_t ldc) noexcept {
  if constexpr (std::is_void_v<Arch>) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t q = 0; q < n; ++q) {
        T sum = 0;
        for (int64_t k = 0; k < K; ++k) {  // fused where the vector code is (std::fma is a libm call on sse2)
          const T a = TransA ? A[k * lda + i] : A[i * lda + k], bk = b[k * ldb + q];
          sum = std::is_same_v<Top, xsimd::sse2> ? sum + a * bk : std::fma(a, bk, sum);
        }
        C[i * ldc + q] = accumulate ? C[i * ldc + q] + sum : sum;
      }
  } else {
    constexpr int rows = std::is_same_v<Top, Arch> ? GemmTile<Top, T>::rows : std::min(4, GemmTile<Top, T>::rows);
    constexpr int64_t step = Vecs * xsimd::batch<T, Arch>::size;
    static constexpr auto strips =
        gemm_strip_table<Top, Arch, T, TransA, Vecs>(std::make_integer_sequence<int, rows>{});
    int64_t j = 0;
    for (; j + step <= n; j += step)
      for (int64_t i = 0; i < M; i += rows)
        strips[std::min<int64_t>(rows, M - i) - 1](K, TransA ? A + i : A + i * lda, lda, b + j, ldb, C + i * ldc + j,
                                                   ldc, accumulate);
    if (j == n) return;
    if constexpr (Vecs > 1)
      gemm_small_columns<Top, Arch, T, TransA, 1>(M, n - j, K, A, lda, b + j, ldb, accumulate, C + j, ldc);
    else
      gemm_small_columns<Top, typename GemmNarrower<Arch>::type, T, TransA, 1>(M, n - j, K, A, lda, b + j, ldb,
                                                                               accumulate, C + j, ldc);
  }
}

// The small path for op(B) = B^T: whole groups of NR columns are transposed into panels (k, c) at
// [k*NR + c], the rest into a K x rest tile; both live in `scratch` (K*N elements).
template <class Arch, class T, bool TransA>
void gemm_small_trans_b(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
                        bool accumulate, T* C, int64_t ldc, T* scratch) noexcept {
  constexpr int64_t nr = GemmTile<Arch, T>::vectors * xsimd::batch<T, Arch>::size;
  const int64_t full = N / nr * nr, rest = N - full;
  for (int64_t j = 0; j < full; j += nr) {
    gemm_transpose_panel<Arch, int(nr)>(B + j * ldb, ldb, K, scratch + j * K);
    gemm_small_columns<Arch, Arch, T, TransA>(M, nr, K, A, lda, scratch + j * K, nr, accumulate, C + j, ldc);
  }
  if (rest == 0) return;
  T* tile = scratch + full * K;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < rest; ++c) tile[k * rest + c] = B[(full + c) * ldb + k];
  gemm_small_columns<Arch, Arch, T, TransA>(M, rest, K, A, lda, tile, rest, accumulate, C + full, ldc);
}

}  // namespace detail

template <class Arch, class T>
GemmTileSize gemm_tile_size::operator()(Arch, const T*) const noexcept {
  return {GemmTile<Arch, T>::rows, GemmTile<Arch, T>::vectors * int64_t(xsimd::batch<T, Arch>::size)};
}

template <class Arch, class T>
void gemm_pack_a_kernel::operator()(Arch, bool trans, const T* a, int64_t lda, int64_t mc, int64_t kc,
                                    T* dst) const noexcept {
  constexpr int64_t mr = GemmTile<Arch, T>::rows;
  if (!trans) {
    for (int64_t i = 0; i < mc; ++i) std::copy_n(a + i * lda, kc, dst + i * gemm_kc_max<T>);  // panels abut
    return;
  }
  // op(A)(i, k) = a[k*lda + i]: each k's panel row is MR contiguous values of A. Row by row of A,
  // so that A is read sequentially rather than a page per k.
  const int64_t full = mc / mr * mr;
  for (int64_t k = 0; k < kc; ++k) {
    const T* row = a + k * lda;
    for (int64_t i = 0; i < full; i += mr)  // a fixed-size copy: GCC emits a few vector moves
      std::memcpy(dst + i * kc + k * mr, row + i, size_t(mr) * sizeof(T));
    for (int64_t r = 0; r < mc - full; ++r) dst[full * kc + k * mr + r] = row[full + r];
  }
}

template <class Arch, class T>
void gemm_pack_b_kernel::operator()(Arch, bool trans, const T* b, int64_t ldb, int64_t kc, int64_t nc,
                                    T* dst) const noexcept {
  using Batch = xsimd::batch<T, Arch>;
  constexpr int64_t vecs = GemmTile<Arch, T>::vectors, w = Batch::size, nr = vecs * w;
  const int64_t full = nc / nr * nr, cols = nc - full;
  if (!trans) {
    // Row by row, so B is read sequentially whatever its stride (a panel at a time would stride
    // through a page per k and defeat the prefetchers).
    for (int64_t k = 0; k < kc; ++k) {
      const T* row = b + k * ldb;
      for (int64_t j = 0; j < full; j += nr)
#pragma GCC unroll 4
        for (int64_t v = 0; v < vecs; ++v)
          Batch::load_unaligned(row + j + v * w).store_aligned(dst + j * kc + k * nr + v * w);
    }
  } else {
    for (int64_t j = 0; j < full; j += nr)
      detail::gemm_transpose_panel<Arch, int(nr)>(b + j * ldb, ldb, kc, dst + j * kc);
  }
  if (cols > 0) {  // last, partial panel: zero-pad so that the kernel's spare lanes stay finite
    T* panel = dst + full * kc;
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t c = 0; c < cols; ++c) panel[k * nr + c] = trans ? b[(full + c) * ldb + k] : b[k * ldb + full + c];
      std::fill(panel + k * nr + cols, panel + (k + 1) * nr, T(0));
    }
  }
}

template <class Arch, class T>
void gemm_micro_kernel::operator()(Arch, bool trans_a, int64_t mc, int64_t nc, int64_t kc, const T* pa, const T* pb,
                                   T* c, int64_t ldc, bool accumulate, const T* bias) const noexcept {
  constexpr int64_t mr = GemmTile<Arch, T>::rows, nr = GemmTile<Arch, T>::vectors * xsimd::batch<T, Arch>::size;
  static constexpr auto tiles = detail::gemm_tile_table<Arch, T>(std::make_integer_sequence<int, int(mr)>{});
  const int64_t panel_stride = mr * (trans_a ? kc : gemm_kc_max<T>);
  for (int64_t i = 0; i < mc; i += mr, pa += panel_stride) {
    const int64_t rows = std::min(mr, mc - i);
    const auto tile = tiles[!trans_a][rows - 1];
    const T* b = pb;
    for (int64_t j = 0; j < nc; j += nr, b += nr * kc) {
      T* cij = c + i * ldc + j;
      const int64_t cols = std::min(nr, nc - j);
      if (cols == nr) {
        tile(kc, pa, b, cij, ldc, accumulate, bias ? bias + j : nullptr);
        continue;
      }
      // Ragged right edge: compute the full-width tile aside (with a zero-padded bias), then
      // add/copy the valid columns the same way the kernel would (one rounding for accumulate).
      alignas(64) T part[mr * nr], part_bias[nr] = {};
      if (bias) std::copy_n(bias + j, cols, part_bias);
      tile(kc, pa, b, part, nr, false, bias ? part_bias : nullptr);
      for (int64_t r = 0; r < rows; ++r)
        detail::gemm_store_part<Arch, int(nr)>(cij + r * ldc, part + r * nr, cols, accumulate);
    }
  }
}

template <class Arch, class T>
void gemm_small_kernel::operator()(Arch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A,
                                   int64_t lda, const T* B, int64_t ldb, bool accumulate, T* C,
                                   int64_t ldc) const noexcept {
  if (trans_b) {
    alignas(64) T scratch[gemm_small_b_max];
    if (trans_a)
      detail::gemm_small_trans_b<Arch, T, true>(M, N, K, A, lda, B, ldb, accumulate, C, ldc, scratch);
    else
      detail::gemm_small_trans_b<Arch, T, false>(M, N, K, A, lda, B, ldb, accumulate, C, ldc, scratch);
  } else if (trans_a) {
    detail::gemm_small_columns<Arch, Arch, T, true>(M, N, K, A, lda, B, ldb, accumulate, C, ldc);
  } else {
    detail::gemm_small_columns<Arch, Arch, T, false>(M, N, K, A, lda, B, ldb, accumulate, C, ldc);
  }
}

#define SEQGRAD_GEMM_INSTANTIATE(EXTERN, ARCH, T)                                                                   \
  EXTERN template GemmTileSize gemm_tile_size::operator()<ARCH, T>(ARCH, const T*) const noexcept;                   \
  EXTERN template void gemm_pack_a_kernel::operator()<ARCH, T>(ARCH, bool, const T*, int64_t, int64_t, int64_t, T*) \
      const noexcept;                                                                                               \
  EXTERN template void gemm_pack_b_kernel::operator()<ARCH, T>(ARCH, bool, const T*, int64_t, int64_t, int64_t, T*) \
      const noexcept;                                                                                               \
  EXTERN template void gemm_micro_kernel::operator()<ARCH, T>(ARCH, bool, int64_t, int64_t, int64_t, const T*,      \
                                                               const T*, T*, int64_t, bool, const T*) const noexcept; \
  EXTERN template void gemm_small_kernel::operator()<ARCH, T>(ARCH, bool, bool, int64_t, int64_t, int64_t,          \
                                                               const T*, int64_t, const T*, int64_t, bool, T*,      \
                                                               int64_t) const noexcept;

#define SEQGRAD_GEMM_INSTANTIATE_ARCH(EXTERN, ARCH) \
  SEQGRAD_GEMM_INSTANTIATE(EXTERN, ARCH, float)     \
  SEQGRAD_GEMM_INSTANTIATE(EXTERN, ARCH, double)

SEQGRAD_GEMM_INSTANTIATE_ARCH(extern, xsimd::avx512bw)
SEQGRAD_GEMM_INSTANTIATE_ARCH(extern, xsimd::fma3<xsimd::avx2>)
SEQGRAD_GEMM_INSTANTIATE_ARCH(extern, xsimd::sse2)

}  // namespace seqgrad::kernels
