// The AVX512_BF16 kernels of gemm()'s bf16 mode (gemm_bf16.h); built with -mavx512bf16, run only
// on CPUs that have it.
#include "autograd/kernels/gemm_bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

namespace seqgrad::kernels::bf16 {

namespace {
// The pairs of 32 consecutive floats (n <= 32 of them valid, the rest read as zero), in order.
// Rounding, as vcvtne2ps2bf16 does everywhere here: nearest even, NaN kept quiet, denormals read as zero.
__m512i pairs_of(const float* x, int64_t n) {
  const __mmask16 lo = n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
  const __mmask16 hi = n >= 32 ? __mmask16(0xffff) : n > 16 ? __mmask16((1u << (n - 16)) - 1) : __mmask16(0);
  return __m512i(_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + 16), _mm512_maskz_loadu_ps(lo, x)));
}

// Lane i: the pair (lo[i], hi[i]) rounded to bf16. vcvtne2ps2bf16 leaves lo's 16 values in words
// 0-15 and hi's in 16-31: interleave them.
__m512i interleaved(__m512 hi, __m512 lo) {
  alignas(64) static constexpr std::array<int16_t, 32> order = [] {
    std::array<int16_t, 32> idx{};
    for (int i = 0; i < 16; ++i) idx[size_t(2 * i)] = int16_t(i), idx[size_t(2 * i + 1)] = int16_t(16 + i);
    return idx;
  }();
  return _mm512_permutexvar_epi16(_mm512_load_si512(order.data()), __m512i(_mm512_cvtne2ps_pbh(hi, lo)));
}

// v[0:16]: v[i] lane j -> v[j] lane i, for 32-bit lanes: within 128-bit lanes by unpacking, then the 4 x 4
// blocks of 128-bit lanes by shuffles.
void transpose16(__m512i* v) {
  __m512i a[16], b[16];
  for (size_t i = 0; i < 16; i += 2) {
    a[i] = _mm512_unpacklo_epi32(v[i], v[i + 1]);
    a[i + 1] = _mm512_unpackhi_epi32(v[i], v[i + 1]);
  }
  for (size_t i = 0; i < 16; i += 4) {  // b[i + j], 128-bit lane L: column 4L + j of rows i..i+3
    b[i] = _mm512_unpacklo_epi64(a[i], a[i + 2]);
    b[i + 1] = _mm512_unpackhi_epi64(a[i], a[i + 2]);
    b[i + 2] = _mm512_unpacklo_epi64(a[i + 1], a[i + 3]);
    b[i + 3] = _mm512_unpackhi_epi64(a[i + 1], a[i + 3]);
  }
  for (size_t j = 0; j < 4; ++j) {
    const __m512i c0 = _mm512_shuffle_i32x4(b[j], b[4 + j], 0x44), c1 = _mm512_shuffle_i32x4(b[j], b[4 + j], 0xee);
    const __m512i c2 = _mm512_shuffle_i32x4(b[8 + j], b[12 + j], 0x44), c3 = _mm512_shuffle_i32x4(b[8 + j], b[12 + j], 0xee);
    v[j] = _mm512_shuffle_i32x4(c0, c2, 0x88);
    v[4 + j] = _mm512_shuffle_i32x4(c0, c2, 0xdd);
    v[8 + j] = _mm512_shuffle_i32x4(c1, c3, 0x88);
    v[12 + j] = _mm512_shuffle_i32x4(c1, c3, 0xdd);
  }
}

// acc += b . a2 (a pair broadcast from memory), two products per lane. Written out so that the
// accumulators stay in registers (GCC 12 spills the intrinsic's) and the pair comes from memory.
inline void dpbf16(__m512& acc, __m512i b, const uint32_t* a2) {
  asm("vdpbf16ps %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(b), "m"(*a2));
}

// R rows x nr columns; the loops over r are unrolled outright so that acc stays in registers.
// Not instrumented by AddressSanitizer, as gemm_impl.hpp's tiles (same reason, same bounds).
template <int R>
__attribute__((no_sanitize("address"))) void tile(int64_t kp, const uint32_t* a, int64_t kp_max, const uint32_t* b, float* c, int64_t ldc, bool accumulate,
          const float* bias, __mmask16 m0, __mmask16 m1) {
  __m512 acc[R][2];
  const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    acc[r][0] = accumulate ? _mm512_maskz_loadu_ps(m0, c + r * ldc) : b0;
    acc[r][1] = accumulate ? _mm512_maskz_loadu_ps(m1, c + r * ldc + 16) : b1;
  }
  for (int64_t k = 0; k < kp; ++k, b += nr) {
    const __m512i v0 = _mm512_loadu_si512(b), v1 = _mm512_loadu_si512(b + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      dpbf16(acc[r][0], v0, a + r * kp_max + k);
      dpbf16(acc[r][1], v1, a + r * kp_max + k);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(c + r * ldc, m0, acc[r][0]);
    _mm512_mask_storeu_ps(c + r * ldc + 16, m1, acc[r][1]);
  }
}

using TileFn = void (*)(int64_t, const uint32_t*, int64_t, const uint32_t*, float*, int64_t, bool, const float*,
                        __mmask16, __mmask16);
template <int... R>
constexpr std::array<TileFn, sizeof...(R)> table(std::integer_sequence<int, R...>) {
  return {&tile<R + 1>...};
}
constexpr auto tiles = table(std::make_integer_sequence<int, int(mr)>{});
}  // namespace

void convert_a(bool trans, const float* pa, int64_t kc_stride, int64_t mc, int64_t kc, uint32_t* dst, int64_t kp_max) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t i = 0; i < mc; i += mr, pa += mr * kc_stride, dst += mr * kp_max) {
    const int64_t rows = std::min(mr, mc - i);
    if (trans) {  // k-major: pairs of two k rows, 16 pairs at a time, turned row-major in registers
      const __mmask16 lanes = __mmask16((1u << rows) - 1);
      for (int64_t k0 = 0; k0 < kp; k0 += 16) {
        const int64_t n = std::min<int64_t>(16, kp - k0);
        __m512i v[16];
        for (int64_t p = 0; p < 16; ++p) {
          const int64_t k = 2 * (k0 + p);
          const __m512 even = p < n ? _mm512_maskz_loadu_ps(lanes, pa + k * mr) : _mm512_setzero_ps();
          const __m512 odd = p < n && k + 1 < kc ? _mm512_maskz_loadu_ps(lanes, pa + (k + 1) * mr) : _mm512_setzero_ps();
          v[p] = interleaved(odd, even);
        }
        transpose16(v);
        for (int64_t r = 0; r < rows; ++r)
          _mm512_mask_storeu_epi32(dst + r * kp_max + k0, __mmask16((1u << n) - 1), v[r]);
      }
      continue;
    }
    for (int64_t r = 0; r < rows; ++r) {
      uint32_t* d = dst + r * kp_max;
      const float* row = pa + r * kc_stride;
      for (int64_t k = 0; k < kc; k += 32) {
        const int64_t n = std::min<int64_t>(32, kc - k);
        const __mmask16 store = __mmask16((uint32_t(1) << ((n + 1) / 2)) - 1);
        _mm512_mask_storeu_epi32(d + k / 2, store, pairs_of(row + k, n));
      }
    }
  }
}

void convert_b(const float* pb, int64_t kc, int64_t nc, uint32_t* dst) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t j = 0; j < nc; j += nr, pb += nr * kc, dst += nr * kp)
    for (int64_t k = 0; k < kp; ++k)
      for (int64_t c = 0; c < nr; c += 16) {
        const __m512 r0 = _mm512_loadu_ps(pb + 2 * k * nr + c);
        const __m512 r1 = 2 * k + 1 < kc ? _mm512_loadu_ps(pb + (2 * k + 1) * nr + c) : _mm512_setzero_ps();
        _mm512_storeu_si512(dst + k * nr + c, interleaved(r1, r0));
      }
}

void micro(int64_t mc, int64_t nc, int64_t kc, const uint32_t* pa, int64_t kp_max, const uint32_t* pb, float* c,
           int64_t ldc, bool accumulate, const float* bias) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t i = 0; i < mc; i += mr, pa += mr * kp_max) {
    const TileFn fn = tiles[size_t(std::min(mr, mc - i) - 1)];
    const uint32_t* b = pb;
    for (int64_t j = 0; j < nc; j += nr, b += nr * kp) {
      const int64_t cols = std::min(nr, nc - j);
      const auto mask = [](int64_t n) { return n >= 16 ? __mmask16(0xffff) : n > 0 ? __mmask16((1u << n) - 1) : __mmask16(0); };
      fn(kp, pa, kp_max, b, c + i * ldc + j, ldc, accumulate, bias ? bias + j : nullptr, mask(cols), mask(cols - 16));
    }
  }
}

}  // namespace seqgrad::kernels::bf16
