// GEMM building blocks written once over xsimd::batch<T, Arch>: the register tile per architecture,
// operand packing, and the micro-kernel that sweeps one packed block of C.
//
// Layout contract with the driver (gemm.cpp), for a block of mc rows, nc columns and kc steps of K:
//   packed A: panels of MR rows, panel p at pa + p*MR*kc, element (r, k) at [k*MR + r];
//   packed B: panels of NR columns, panel q at pb + q*NR*kc, element (k, c) at [k*NR + c], zero-padded.
// Packing reads op(A) / op(B) through the transpose flags, so no transpose is ever materialised.
// The buffers need `gemm_pack_slack` extra elements: packing may store whole batches past the end.
//
// Every element of C is one FMA chain over the block's k in order, whatever the tile it falls in,
// which is what makes the driver's results independent of how it splits C among threads.
//
// Definitions are out of class and instantiated per ISA in gemm_{avx512,avx2,sse2}.cpp (built with
// that ISA's -march); the extern templates at the end keep other translation units from
// instantiating them. Nothing here throws: xsimd's dispatcher is noexcept.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
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
struct GemmTile<xsimd::avx512bw, T> {  // 32 zmm: 28 accumulators; broadcasts fold into the FMA operand
  static constexpr int rows = 14, vectors = 2;
};

struct GemmTileSize {
  int64_t mr, nr;
};

// Extra elements a pack buffer needs past mr*kc / nr*kc (whole-batch stores of a partial panel).
inline constexpr int64_t gemm_pack_slack = 64;

// The tile size the dispatcher's architecture uses; the T* argument only selects the type.
struct gemm_tile_size {
  template <class Arch, class T>
  GemmTileSize operator()(Arch, const T*) const noexcept;
};

// op(A) rows [0, mc) x k [0, kc) -> packed A. `a` points at op(A)(0, 0); trans: A is stored K x M.
struct gemm_pack_a_kernel {
  template <class Arch, class T>
  void operator()(Arch, bool trans, const T* a, int64_t lda, int64_t mc, int64_t kc, T* dst) const noexcept;
};

// op(B) k [0, kc) x columns [0, nc) -> packed B. `b` points at op(B)(0, 0); trans: B is stored N x K.
struct gemm_pack_b_kernel {
  template <class Arch, class T>
  void operator()(Arch, bool trans, const T* b, int64_t ldb, int64_t kc, int64_t nc, T* dst) const noexcept;
};

// C[0:mc, 0:nc] = (accumulate ? C : 0) + packed A * packed B, one register tile at a time. The A
// panel (MR x kc) stays in L1 while the B panels stream from L2.
struct gemm_micro_kernel {
  template <class Arch, class T>
  void operator()(Arch, int64_t mc, int64_t nc, int64_t kc, const T* pa, const T* pb, T* c, int64_t ldc,
                  bool accumulate) const noexcept;
};

namespace detail {

// Rows x (vectors*W) tile of C over kc steps. Rows <= MR handles the last panel of a block at the
// cost of its own rows only; the packed A stride stays MR.
template <class Arch, class T, int Rows>
void gemm_register_tile(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, bool accumulate) noexcept {
  using Batch = xsimd::batch<T, Arch>;
  constexpr int mr = GemmTile<Arch, T>::rows, vecs = GemmTile<Arch, T>::vectors, w = int(Batch::size);
  Batch acc[Rows][vecs];
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < vecs; ++v) acc[r][v] = Batch(T(0));
  for (int64_t k = 0; k < kc; ++k, a += mr, b += vecs * w) {
    Batch bk[vecs];
#pragma GCC unroll 4
    for (int v = 0; v < vecs; ++v) bk[v] = Batch::load_aligned(b + v * w);
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) {
      const Batch ar(a[r]);
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

template <class Arch, class T>
using GemmTileFn = void (*)(int64_t, const T*, const T*, T*, int64_t, bool) noexcept;

// tiles[r - 1] computes r rows.
template <class Arch, class T, int... R>
constexpr std::array<GemmTileFn<Arch, T>, sizeof...(R)> gemm_tile_table(std::integer_sequence<int, R...>) {
  return {&gemm_register_tile<Arch, T, R + 1>...};
}

// Gather indices lane*stride for lanes [first, first + W), clamped to lane `last` so that no lane
// reads outside the block; the clamped lanes are overwritten or zeroed by the caller.
template <class Arch, class T>
auto gemm_gather_index(int64_t first, int64_t last, int64_t stride) noexcept {
  using Index = xsimd::batch<xsimd::as_integer_t<T>, Arch>;
  alignas(64) xsimd::as_integer_t<T> lanes[Index::size];
  for (int64_t l = 0; l < int64_t(Index::size); ++l) lanes[l] = xsimd::as_integer_t<T>(std::min(first + l, last) * stride);
  return Index::load_aligned(lanes);
}

// Gathers address lanes with the index type's width: int32 for float.
template <class T>
bool gemm_gather_fits(int64_t lanes, int64_t stride) noexcept {
  return lanes * stride < (int64_t(1) << (8 * sizeof(xsimd::as_integer_t<T>) - 2));
}

}  // namespace detail

template <class Arch, class T>
GemmTileSize gemm_tile_size::operator()(Arch, const T*) const noexcept {
  return {GemmTile<Arch, T>::rows, GemmTile<Arch, T>::vectors * int64_t(xsimd::batch<T, Arch>::size)};
}

template <class Arch, class T>
void gemm_pack_a_kernel::operator()(Arch, bool trans, const T* a, int64_t lda, int64_t mc, int64_t kc,
                                    T* dst) const noexcept {
  using Batch = xsimd::batch<T, Arch>;
  constexpr int64_t mr = GemmTile<Arch, T>::rows, w = Batch::size;
  for (int64_t i = 0; i < mc; i += mr, dst += mr * kc) {
    const int64_t rows = std::min(mr, mc - i);
    if (trans) {  // op(A)(i, k) = a[k*lda + i]: a panel row of MR values is contiguous in A
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = 0; r < rows; ++r) dst[k * mr + r] = a[k * lda + i + r];
    } else if (detail::gemm_gather_fits<T>(mr, lda)) {
      // A's rows run along k, the panel wants MR rows side by side: gather down the columns. The
      // whole batches written past k*MR + rows land on the next k (rewritten next) or the slack.
      constexpr int64_t gathers = (mr + w - 1) / w;
      decltype(detail::gemm_gather_index<Arch, T>(0, 0, 0)) index[gathers];
      for (int64_t g = 0; g < gathers; ++g) index[g] = detail::gemm_gather_index<Arch, T>(g * w, rows - 1, lda);
      const T* src = a + i * lda;
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t g = 0; g < gathers; ++g) Batch::gather(src + k, index[g]).store_unaligned(dst + k * mr + g * w);
    } else {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < kc; ++k) dst[k * mr + r] = a[(i + r) * lda + k];
    }
  }
}

template <class Arch, class T>
void gemm_pack_b_kernel::operator()(Arch, bool trans, const T* b, int64_t ldb, int64_t kc, int64_t nc,
                                    T* dst) const noexcept {
  using Batch = xsimd::batch<T, Arch>;
  constexpr int64_t vecs = GemmTile<Arch, T>::vectors, w = Batch::size, nr = vecs * w;
  for (int64_t j = 0; j < nc; j += nr, dst += nr * kc) {
    const int64_t cols = std::min(nr, nc - j);
    if (cols < nr) {  // last, partial panel: zero-pad so the kernel's padding lanes stay finite
      for (int64_t k = 0; k < kc; ++k) {
        for (int64_t c = 0; c < cols; ++c) dst[k * nr + c] = trans ? b[(j + c) * ldb + k] : b[k * ldb + j + c];
        for (int64_t c = cols; c < nr; ++c) dst[k * nr + c] = T(0);
      }
    } else if (!trans) {  // a panel row is contiguous in B
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t v = 0; v < vecs; ++v) Batch::load_unaligned(b + k * ldb + j + v * w).store_aligned(dst + k * nr + v * w);
    } else if (detail::gemm_gather_fits<T>(nr, ldb)) {  // B's rows run along k: gather down the columns
      for (int64_t v = 0; v < vecs; ++v) {
        const auto index = detail::gemm_gather_index<Arch, T>(v * w, nr - 1, ldb);
        const T* src = b + j * ldb;
        for (int64_t k = 0; k < kc; ++k) Batch::gather(src + k, index).store_aligned(dst + k * nr + v * w);
      }
    } else {
      for (int64_t c = 0; c < nr; ++c)
        for (int64_t k = 0; k < kc; ++k) dst[k * nr + c] = b[(j + c) * ldb + k];
    }
  }
}

template <class Arch, class T>
void gemm_micro_kernel::operator()(Arch, int64_t mc, int64_t nc, int64_t kc, const T* pa, const T* pb, T* c,
                                   int64_t ldc, bool accumulate) const noexcept {
  constexpr int64_t mr = GemmTile<Arch, T>::rows, nr = GemmTile<Arch, T>::vectors * xsimd::batch<T, Arch>::size;
  static constexpr auto tiles = detail::gemm_tile_table<Arch, T>(std::make_integer_sequence<int, int(mr)>{});
  for (int64_t i = 0; i < mc; i += mr, pa += mr * kc) {
    const auto tile = tiles[std::min(mr, mc - i) - 1];
    const int64_t rows = std::min(mr, mc - i);
    const T* b = pb;
    for (int64_t j = 0; j < nc; j += nr, b += nr * kc) {
      T* cij = c + i * ldc + j;
      const int64_t cols = std::min(nr, nc - j);
      if (cols == nr) {
        tile(kc, pa, b, cij, ldc, accumulate);
        continue;
      }
      // Ragged right edge: compute the full-width tile aside, then add/copy the valid columns the
      // same way the kernel would (one rounding for accumulate).
      alignas(64) T part[mr * nr];
      tile(kc, pa, b, part, nr, false);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t q = 0; q < cols; ++q) cij[r * ldc + q] = accumulate ? cij[r * ldc + q] + part[r * nr + q] : part[r * nr + q];
    }
  }
}

#define SEQGRAD_GEMM_INSTANTIATE(EXTERN, ARCH, T)                                                                   \
  EXTERN template GemmTileSize gemm_tile_size::operator()<ARCH, T>(ARCH, const T*) const noexcept;                   \
  EXTERN template void gemm_pack_a_kernel::operator()<ARCH, T>(ARCH, bool, const T*, int64_t, int64_t, int64_t, T*) \
      const noexcept;                                                                                               \
  EXTERN template void gemm_pack_b_kernel::operator()<ARCH, T>(ARCH, bool, const T*, int64_t, int64_t, int64_t, T*) \
      const noexcept;                                                                                               \
  EXTERN template void gemm_micro_kernel::operator()<ARCH, T>(ARCH, int64_t, int64_t, int64_t, const T*, const T*,  \
                                                               T*, int64_t, bool) const noexcept;

#define SEQGRAD_GEMM_INSTANTIATE_ARCH(EXTERN, ARCH) \
  SEQGRAD_GEMM_INSTANTIATE(EXTERN, ARCH, float)     \
  SEQGRAD_GEMM_INSTANTIATE(EXTERN, ARCH, double)

SEQGRAD_GEMM_INSTANTIATE_ARCH(extern, xsimd::avx512bw)
SEQGRAD_GEMM_INSTANTIATE_ARCH(extern, xsimd::fma3<xsimd::avx2>)
SEQGRAD_GEMM_INSTANTIATE_ARCH(extern, xsimd::sse2)

}  // namespace seqgrad::kernels
