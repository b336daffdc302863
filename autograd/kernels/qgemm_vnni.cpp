// The AVX-512 VNNI kernel of qgemm (qgemm.h); built with -mavx512vnni, called only on CPUs that have it.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>
#include <vector>

#include "autograd/kernels/qgemm.h"

namespace seqgrad::quant::detail {

namespace {
// R rows x V*16 columns over all of K: vpdpbusd adds four u8*s8 products per int32 lane, the
// packed weights (stored + 128) as the unsigned operand and four activation bytes, broadcast
// straight from memory, as the signed one; 128 * (the row's sum of A) comes off in the epilogue.
// 6 x 4 keeps 24 accumulators in flight, enough to cover vpdpbusd's latency on two ports.
constexpr int max_rows = 6, max_vecs = 4;
constexpr int64_t l1_bytes = 32 << 10;

// acc += w (u8) . a4 (four s8, broadcast from memory), four products per lane. Written out because
// GCC 12 keeps _mm512_dpbusd_epi32's accumulators in memory, copying each one twice per call.
inline void dpbusd(__m512i& acc, __m512i w, const int8_t* a4) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*reinterpret_cast<const int32_t*>(a4)));
}

// The loops over r and v are unrolled outright so that acc stays in registers. Not instrumented by
// AddressSanitizer, as gemm_impl.hpp's tiles: it would keep acc in memory.
template <int R, int V>
__attribute__((no_sanitize("address"))) void tile(const int8_t* A, int64_t ldq, const float* a_scale, const int32_t* a_sum, const QMatrix& W, int64_t j,
          bool accumulate, float* C, int64_t ldc, const float* bias) {
  __m512i acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_si512();
  const uint8_t* w = W.packed.data() + W.packed_offset(j);
  const int64_t step = W.packed_stride(j);
  for (int64_t k = 0; k < W.Kp; k += 4, w += step) {
    __m512i wv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) wv[v] = _mm512_loadu_si512(w + v * 64);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) dpbusd(acc[r][v], wv[v], A + r * ldq + k);
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    const int64_t n0 = j + v * 16, valid = std::clamp<int64_t>(W.N - n0, 0, 16);
    const __mmask16 mask = __mmask16((1u << valid) - 1);
    const __m512 ws = _mm512_maskz_loadu_ps(mask, W.scale.data() + n0);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + n0) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i sum = _mm512_sub_epi32(acc[r][v], _mm512_set1_epi32(a_sum[r] * 128));
      __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(_mm512_set1_ps(a_scale[r]), ws));
      if (bias) y = _mm512_add_ps(y, b);
      float* c = C + r * ldc + n0;
      if (accumulate) y = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, c), y);
      _mm512_mask_storeu_ps(c, mask, y);
    }
  }
}

using TileFn = void (*)(const int8_t*, int64_t, const float*, const int32_t*, const QMatrix&, int64_t, bool, float*,
                        int64_t, const float*);
template <int R, int... V>
constexpr std::array<TileFn, max_vecs> row_of(std::integer_sequence<int, V...>) {
  return {&tile<R, V + 1>...};
}
template <int... R>
constexpr std::array<std::array<TileFn, max_vecs>, max_rows> table(std::integer_sequence<int, R...>) {
  return {row_of<R + 1>(std::make_integer_sequence<int, max_vecs>{})...};
}
constexpr auto tiles = table(std::make_integer_sequence<int, max_rows>{});

// sum_k A[m][k] over the Kp bytes of each row (the padding is zero).
void row_sums(int64_t M, const int8_t* A, int64_t ldq, int64_t Kp, int32_t* out) {
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t m = 0; m < M; ++m) {
    __m512i s = _mm512_setzero_si512();
    for (int64_t k = 0; k < Kp; k += 64) {
      const __mmask64 mask = Kp - k >= 64 ? ~__mmask64(0) : (__mmask64(1) << (Kp - k)) - 1;
      s = _mm512_dpbusd_epi32(s, ones, _mm512_maskz_loadu_epi8(mask, A + m * ldq + k));
    }
    out[m] = _mm512_reduce_add_epi32(s);
  }
}
}  // namespace

void quantize_row_avx512(int64_t K, const float* a, int8_t* q, float* scale) {
  __m512 vmax = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(a + k)));
  float amax = _mm512_reduce_max_ps(vmax);
  for (int64_t j = k; j < K; ++j) amax = std::max(amax, std::abs(a[j]));
  const float s = row_scale(amax), inv = 1.f / s;
  *scale = s;
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  for (k = 0; k < K; k += 16) {  // cvtps rounds to nearest even, as nearbyint does
    const __mmask16 mask = K - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (K - k)) - 1);
    __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, a + k), vinv));
    _mm_mask_storeu_epi8(q + k, mask, _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(v, lo), hi)));
  }
}

void qgemm_vnni(int64_t M, const int8_t* Aq, int64_t ldq, const float* a_scale, const QMatrix& W, int64_t j0,
                int64_t j1, bool accumulate, float* C, int64_t ldc, const float* bias) {
  thread_local std::vector<int32_t> a_sum;
  if (a_sum.size() < size_t(M)) a_sum.resize(size_t(M));
  row_sums(M, Aq, ldq, W.Kp, a_sum.data());
  auto run = [&](int64_t m, int64_t j) {
    const int64_t r = std::min<int64_t>(max_rows, M - m), v = std::min<int64_t>(max_vecs, (j1 - j) / 16);
    tiles[size_t(r - 1)][size_t(v - 1)](Aq + m * ldq, ldq, a_scale + m, a_sum.data() + m, W, j, accumulate, C + m * ldc,
                                        ldc, bias);
  };
  j1 = std::min(j1, W.Np);
  // Either the block's weights stay in L1 while the rows stream by, writing C row by row (an input
  // projection: small K, many rows), or each strip of weights does, reused by all rows (a hidden product).
  if ((j1 - j0) * W.Kp <= l1_bytes) {
    for (int64_t m = 0; m < M; m += max_rows)
      for (int64_t j = j0; j < j1; j += 16 * max_vecs) run(m, j);
  } else {
    for (int64_t j = j0; j < j1; j += 16 * max_vecs)
      for (int64_t m = 0; m < M; m += max_rows) run(m, j);
  }
}

}  // namespace seqgrad::quant::detail
