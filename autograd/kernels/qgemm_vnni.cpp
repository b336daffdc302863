// The AVX-512 VNNI kernel of qgemm (qgemm.h); built with -mavx512vnni, called only on CPUs that have it.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include "autograd/kernels/qgemm.h"

namespace seqgrad::quant::detail {

namespace {
// R rows x V*16 columns over all of K: vpdpbusd adds four u8*s8 products per int32 lane, the
// activation bytes flipped to unsigned (a + 128) and the 128 * colsum taken off in the epilogue.
template <int R, int V>
void tile(const int8_t* A, int64_t ldq, const float* a_scale, const QMatrix& W, int64_t j, bool accumulate, float* C,
          int64_t ldc, const float* bias) {
  __m512i acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi32(int32_t(0x80808080u));
  const int8_t* w = W.packed.data() + j * 4;
  for (int64_t k = 0; k < W.Kp; k += 4, w += W.Np * 4) {
    __m512i wv[V];
    for (int v = 0; v < V; ++v) wv[v] = _mm512_loadu_si512(w + v * 64);
    for (int r = 0; r < R; ++r) {
      int32_t a4;
      std::memcpy(&a4, A + r * ldq + k, 4);
      const __m512i a = _mm512_xor_si512(_mm512_set1_epi32(a4), flip);
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], a, wv[v]);
    }
  }
  for (int v = 0; v < V; ++v) {
    const int64_t n0 = j + v * 16, valid = std::min<int64_t>(16, W.N - n0);
    if (valid <= 0) break;
    const __mmask16 mask = __mmask16((1u << valid) - 1);
    const __m512i offset = _mm512_slli_epi32(_mm512_loadu_si512(W.colsum.data() + n0), 7);
    const __m512 ws = _mm512_maskz_loadu_ps(mask, W.scale.data() + n0);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + n0) : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][v], offset)),
                               _mm512_mul_ps(_mm512_set1_ps(a_scale[r]), ws));
      if (bias) y = _mm512_add_ps(y, b);
      float* c = C + r * ldc + n0;
      if (accumulate) y = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, c), y);
      _mm512_mask_storeu_ps(c, mask, y);
    }
  }
}

using TileFn = void (*)(const int8_t*, int64_t, const float*, const QMatrix&, int64_t, bool, float*, int64_t,
                        const float*);
template <int R, int... V>
constexpr std::array<TileFn, 4> row_of(std::integer_sequence<int, V...>) {
  return {&tile<R, V + 1>...};
}
constexpr std::array<std::array<TileFn, 4>, 4> tiles{row_of<1>(std::make_integer_sequence<int, 4>{}),
                                                     row_of<2>(std::make_integer_sequence<int, 4>{}),
                                                     row_of<3>(std::make_integer_sequence<int, 4>{}),
                                                     row_of<4>(std::make_integer_sequence<int, 4>{})};
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
  for (int64_t j = j0; j < j1 && j < W.N; j += 64) {
    const int64_t v = std::min<int64_t>(4, (j1 - j) / 16);
    for (int64_t m = 0; m < M; m += 4) {
      const int64_t r = std::min<int64_t>(4, M - m);
      tiles[size_t(r - 1)][size_t(v - 1)](Aq + m * ldq, ldq, a_scale + m, W, j, accumulate, C + m * ldc, ldc, bias);
    }
  }
}

}  // namespace seqgrad::quant::detail
