// int8 GEMM for dynamic quantization (quant/quantize.h): weights W (N x K) stored as int8 with one
// scale per output channel (row), activations quantized per row at run time, products summed in
// int32, then C = beta*C + acc * (a_scale[m] * w_scale[n]) + bias[n] in float32.
//
// Both operands are symmetric int8 in [-127, 127]: q = round(v / s), s = max|v| / 127. The
// kernels: AVX-512 VNNI (vpdpbusd, which multiplies unsigned by signed bytes: the packed weights
// are stored offset by 128, and 128 * sum_k A[m][k] is subtracted again; the activations, signed,
// are the operand vpdpbusd broadcasts from memory), AVX2 (bytes sign-extended to int16 and
// vpmaddwd, which cannot saturate) and plain C++. All three compute the exact integer sums and the
// same float epilogue (no FMA contraction), so their outputs are bitwise identical; the CPU picks
// the best at run time (set_qisa forces one, for tests and benchmarks). Results do not depend on
// the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace seqgrad::quant {

enum class QIsa { scalar, avx2, avx512_vnni };
const char* qisa_name(QIsa isa);
QIsa best_qisa();   // the best this CPU runs
QIsa qisa();        // the one in use (best_qisa() unless forced)
void set_qisa(QIsa isa);  // throws std::invalid_argument if the CPU lacks it

// W (N x K) as int8 rows with per-row scales, plus its packing for the kernels: panels of 64
// columns (the last one narrower), each contiguous, holding groups of 4 consecutive k,
// [k/4][n][k%4], each value + 128 as an unsigned byte, padded (with 128, i.e. zero) to
// Kp = 4*ceil(K/4), Np = 16*ceil(N/16). Contiguous panels matter: with groups Np*4 bytes apart
// (a page for N = 1024), a panel's groups would all fall in the same few L1 sets.
struct QMatrix {
  int64_t N = 0, K = 0, Kp = 0, Np = 0;
  std::vector<int8_t> q;      // N x K row-major: the stored values
  std::vector<float> scale;   // N: W[n][k] ~ q[n][k] * scale[n]
  std::vector<uint8_t> packed;
  static constexpr int64_t panel = 64;

  // Where column n's first group is in packed, and the bytes from one group of 4 k to the next.
  int64_t packed_offset(int64_t n) const { return n / panel * panel * Kp + n % panel * 4; }
  int64_t packed_stride(int64_t n) const { return std::min(panel, Np - n / panel * panel) * 4; }

  // Per-row symmetric quantization of a float matrix.
  static QMatrix quantize(const float* w, int64_t N, int64_t K);
  // From stored int8 values and scales (a loaded file); checks sizes and that values are in [-127, 127].
  static QMatrix from_int8(std::vector<int8_t> q, std::vector<float> scale, int64_t N, int64_t K);
  // The float matrix it stands for, q * scale (N x K).
  std::vector<float> dequantize() const;
};

// Quantizes M rows of A (K values each, row stride lda) into q (M x ldq, ldq >= Kp, padding zeroed)
// with one scale per row (1 for an all-zero row).
void quantize_rows(int64_t M, int64_t K, const float* A, int64_t lda, int8_t* q, int64_t ldq, float* scale);

// C (M x N, row stride ldc) = (accumulate ? C : 0) + (Aq W^T)[m][n] * a_scale[m] * W.scale[n] + bias[n]
// (bias may be null). Aq: M rows of W.Kp int8 with row stride ldq.
void qgemm(int64_t M, const int8_t* Aq, int64_t ldq, const float* a_scale, const QMatrix& W, bool accumulate, float* C,
           int64_t ldc, const float* bias);

// quantize_rows into a per-thread buffer (grown, never shrunk: no allocation in steady state), then qgemm.
void qlinear(int64_t M, const float* A, int64_t lda, const QMatrix& W, bool accumulate, float* C, int64_t ldc,
             const float* bias);

namespace detail {
// One ISA's kernel: columns [j0, j1) (multiples of 16 but j1 may be Np) of all M rows, as qgemm.
using QKernel = void (*)(int64_t M, const int8_t* Aq, int64_t ldq, const float* a_scale, const QMatrix& W, int64_t j0,
                         int64_t j1, bool accumulate, float* C, int64_t ldc, const float* bias);
void qgemm_avx2(int64_t, const int8_t*, int64_t, const float*, const QMatrix&, int64_t, int64_t, bool, float*, int64_t,
                const float*);
void qgemm_vnni(int64_t, const int8_t*, int64_t, const float*, const QMatrix&, int64_t, int64_t, bool, float*, int64_t,
                const float*);
// quantize_rows' SIMD forms (the same values: products rounded to nearest even, clamped), without padding.
void quantize_row_avx2(int64_t K, const float* a, int8_t* q, float* scale);
void quantize_row_avx512(int64_t K, const float* a, int8_t* q, float* scale);
// The scale of a row whose largest magnitude is amax, and the factor values are multiplied by.
inline float row_scale(float amax) { return amax > 0 ? amax / 127.f : 1.f; }
// The epilogue every kernel applies to one int32 sum, written once so all round alike.
inline float dequant(int32_t acc, float a_scale, float w_scale, const float* bias, int64_t n, bool accumulate,
                     const float* c) {
  float y = float(acc) * (a_scale * w_scale);
  if (bias) y = y + bias[n];
  return accumulate ? *c + y : y;
}
}  // namespace detail

}  // namespace seqgrad::quant
