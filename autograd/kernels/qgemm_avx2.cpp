// The AVX2 kernel of qgemm (qgemm.h); built with -march=x86-64-v3, called only on CPUs with AVX2.
// Bytes are sign-extended to int16 and multiplied by vpmaddwd, exact (vpmaddubsw could saturate);
// the packed weights' offset of 128 is flipped off as they are loaded, once per R rows.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#include "autograd/kernels/qgemm.h"

namespace seqgrad::quant::detail {

namespace {
// R rows x V*8 columns. Per 8 columns two accumulators: vpmaddwd of columns 0-3 / 4-7 leaves each
// column's sum in two adjacent int32 lanes, added pairwise in the epilogue.
template <int R, int V>
void tile(const int8_t* A, int64_t ldq, const float* a_scale, const QMatrix& W, int64_t j, bool accumulate, float* C,
          int64_t ldc, const float* bias) {
  __m256i lo[R][V], hi[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) lo[r][v] = hi[r][v] = _mm256_setzero_si256();
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  const uint8_t* w = W.packed.data() + W.packed_offset(j);
  const int64_t step = W.packed_stride(j);
  for (int64_t k = 0; k < W.Kp; k += 4, w += step) {
    __m256i wl[V], wh[V];
    for (int v = 0; v < V; ++v) {
      const __m256i b = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + v * 32)), flip);
      wl[v] = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(b));
      wh[v] = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(b, 1));
    }
    for (int r = 0; r < R; ++r) {
      int32_t a4;
      std::memcpy(&a4, A + r * ldq + k, 4);
      const __m256i a = _mm256_broadcastq_epi64(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(a4)));
      for (int v = 0; v < V; ++v) {
        lo[r][v] = _mm256_add_epi32(lo[r][v], _mm256_madd_epi16(a, wl[v]));
        hi[r][v] = _mm256_add_epi32(hi[r][v], _mm256_madd_epi16(a, wh[v]));
      }
    }
  }
  for (int v = 0; v < V; ++v) {
    const int64_t n0 = j + v * 8, valid = std::min<int64_t>(8, W.N - n0);
    if (valid <= 0) break;
    for (int r = 0; r < R; ++r) {
      // hadd gives columns 0 1 4 5 | 2 3 6 7; the permute puts them in order.
      alignas(32) int32_t sums[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums),
                         _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[r][v], hi[r][v]), 0xD8));
      float* c = C + r * ldc + n0;
      if (valid == 8) {
        __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(sums))),
                                 _mm256_mul_ps(_mm256_set1_ps(a_scale[r]), _mm256_loadu_ps(W.scale.data() + n0)));
        if (bias) y = _mm256_add_ps(y, _mm256_loadu_ps(bias + n0));
        if (accumulate) y = _mm256_add_ps(_mm256_loadu_ps(c), y);
        _mm256_storeu_ps(c, y);
      } else {
        for (int64_t q = 0; q < valid; ++q)
          c[q] = dequant(sums[q], a_scale[r], W.scale[size_t(n0 + q)], bias, n0 + q, accumulate, c + q);
      }
    }
  }
}

using TileFn = void (*)(const int8_t*, int64_t, const float*, const QMatrix&, int64_t, bool, float*, int64_t,
                        const float*);
template <int R, int... V>
constexpr std::array<TileFn, 2> row_of(std::integer_sequence<int, V...>) {
  return {&tile<R, V + 1>...};
}
constexpr std::array<std::array<TileFn, 2>, 4> tiles{row_of<1>(std::make_integer_sequence<int, 2>{}),
                                                     row_of<2>(std::make_integer_sequence<int, 2>{}),
                                                     row_of<3>(std::make_integer_sequence<int, 2>{}),
                                                     row_of<4>(std::make_integer_sequence<int, 2>{})};
}  // namespace

void quantize_row_avx2(int64_t K, const float* a, int8_t* q, float* scale) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  __m256 vmax = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(a + k)));
  alignas(32) float m8[8];
  _mm256_store_ps(m8, vmax);
  float amax = 0;
  for (float v : m8) amax = std::max(amax, v);
  for (int64_t j = k; j < K; ++j) amax = std::max(amax, std::abs(a[j]));
  const float s = row_scale(amax), inv = 1.f / s;
  *scale = s;
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  for (k = 0; k + 8 <= K; k += 8) {  // cvtps rounds to nearest even, as nearbyint does
    __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(a + k), vinv));
    v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
    alignas(32) int32_t w[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(w), v);
    for (int j = 0; j < 8; ++j) q[k + j] = int8_t(w[j]);
  }
  for (; k < K; ++k) q[k] = int8_t(std::clamp(std::nearbyint(a[k] * inv), -127.f, 127.f));
}

void qgemm_avx2(int64_t M, const int8_t* Aq, int64_t ldq, const float* a_scale, const QMatrix& W, int64_t j0,
                int64_t j1, bool accumulate, float* C, int64_t ldc, const float* bias) {
  for (int64_t j = j0; j < j1 && j < W.N; j += 16) {
    const int64_t v = std::min<int64_t>(2, (j1 - j) / 8);
    for (int64_t m = 0; m < M; m += 4) {
      const int64_t r = std::min<int64_t>(4, M - m);
      tiles[size_t(r - 1)][size_t(v - 1)](Aq + m * ldq, ldq, a_scale + m, W, j, accumulate, C + m * ldc, ldc, bias);
    }
  }
}

}  // namespace seqgrad::quant::detail
