// The int8 GEMM's driver, packing, activation quantization, ISA choice and the plain C++ kernel.
#include "autograd/kernels/qgemm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace seqgrad::quant {

namespace {
int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// Reference kernel on the packed layout: the same integer sums as the SIMD ones.
void qgemm_scalar(int64_t M, const int8_t* Aq, int64_t ldq, const float* a_scale, const QMatrix& W, int64_t j0,
                  int64_t j1, bool accumulate, float* C, int64_t ldc, const float* bias) {
  j1 = std::min(j1, W.N);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = j0; n < j1; ++n) {
      int32_t acc = 0;
      for (int64_t k = 0; k < W.Kp; ++k)
        acc += int32_t(Aq[m * ldq + k]) * (W.packed[size_t(W.packed_offset(n) + k / 4 * W.packed_stride(n) + k % 4)] - 128);
      C[m * ldc + n] = detail::dequant(acc, a_scale[m], W.scale[size_t(n)], bias, n, accumulate, C + m * ldc + n);
    }
}

bool cpu_has(QIsa isa) {
  switch (isa) {
    case QIsa::avx512_vnni:
      return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
    case QIsa::avx2: return __builtin_cpu_supports("avx2");
    default: return true;
  }
}

QIsa& active() {
  static QIsa isa = best_qisa();
  return isa;
}

// A column block: a multiple of 16 columns, a few hundred KB of packed weights at most.
constexpr int64_t block_cols = 256;
// Below this many multiply-adds one thread is faster than a parallel region.
constexpr double parallel_min_ops = 1 << 20;
}  // namespace

const char* qisa_name(QIsa isa) {
  switch (isa) {
    case QIsa::avx512_vnni: return "avx512_vnni";
    case QIsa::avx2: return "avx2";
    default: return "scalar";
  }
}
QIsa best_qisa() { return cpu_has(QIsa::avx512_vnni) ? QIsa::avx512_vnni : cpu_has(QIsa::avx2) ? QIsa::avx2 : QIsa::scalar; }
QIsa qisa() { return active(); }
void set_qisa(QIsa isa) {
  if (!cpu_has(isa)) throw std::invalid_argument(fmt::format("set_qisa: this CPU does not support {}", qisa_name(isa)));
  active() = isa;
}

QMatrix QMatrix::from_int8(std::vector<int8_t> q, std::vector<float> scale, int64_t N, int64_t K) {
  if (N <= 0 || K <= 0 || int64_t(q.size()) != N * K || int64_t(scale.size()) != N)
    throw std::invalid_argument(fmt::format("QMatrix: {} int8 values and {} scales do not make a ({}, {}) matrix",
                                            q.size(), scale.size(), N, K));
  // (a + 128) * w summed over K stays in int32 below 2^31 / (255 * 127) terms.
  if (K > 65536) throw std::invalid_argument(fmt::format("QMatrix: K = {} exceeds the int32 accumulator's 65536", K));
  for (size_t i = 0; i < q.size(); ++i)
    if (q[i] == -128)
      throw std::invalid_argument(fmt::format("QMatrix: value {} at ({}, {}) is outside [-127, 127]", int(q[i]),
                                              int64_t(i) / K, int64_t(i) % K));
  for (float s : scale)
    if (!(s > 0) || !std::isfinite(s)) throw std::invalid_argument(fmt::format("QMatrix: scale {} is not positive and finite", s));
  QMatrix w;
  w.N = N, w.K = K, w.Kp = round_up(K, 4), w.Np = round_up(N, 16);
  w.q = std::move(q);
  w.scale = std::move(scale);
  w.packed.assign(size_t(w.Kp * w.Np), 128);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      w.packed[size_t(w.packed_offset(n) + k / 4 * w.packed_stride(n) + k % 4)] = uint8_t(w.q[size_t(n * K + k)] + 128);
  return w;
}

QMatrix QMatrix::quantize(const float* w, int64_t N, int64_t K) {
  std::vector<int8_t> q(size_t(std::max<int64_t>(N * K, 0)));
  std::vector<float> scale(size_t(std::max<int64_t>(N, 0)));
  for (int64_t n = 0; n < N; ++n) quantize_rows(1, K, w + n * K, K, q.data() + n * K, K, &scale[size_t(n)]);
  return from_int8(std::move(q), std::move(scale), N, K);
}

std::vector<float> QMatrix::dequantize() const {
  std::vector<float> w(q.size());
  for (size_t i = 0; i < q.size(); ++i) w[i] = float(q[i]) * scale[i / size_t(K)];
  return w;
}

void quantize_rows(int64_t M, int64_t K, const float* A, int64_t lda, int8_t* q, int64_t ldq, float* scale) {
  for (int64_t m = 0; m < M; ++m) {
    const float* a = A + m * lda;
    int8_t* qm = q + m * ldq;
    if (active() == QIsa::avx512_vnni) {
      detail::quantize_row_avx512(K, a, qm, scale + m);
    } else if (active() == QIsa::avx2) {
      detail::quantize_row_avx2(K, a, qm, scale + m);
    } else {
      float amax = 0;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::abs(a[k]));
      const float s = detail::row_scale(amax), inv = 1.f / s;
      scale[m] = s;
      for (int64_t k = 0; k < K; ++k) qm[k] = int8_t(std::clamp(std::nearbyint(a[k] * inv), -127.f, 127.f));
    }
    std::fill(qm + K, qm + ldq, int8_t(0));
  }
}

void qgemm(int64_t M, const int8_t* Aq, int64_t ldq, const float* a_scale, const QMatrix& W, bool accumulate, float* C,
           int64_t ldc, const float* bias) {
  const detail::QKernel kernel = active() == QIsa::avx512_vnni ? detail::qgemm_vnni
                                 : active() == QIsa::avx2       ? detail::qgemm_avx2
                                                                : qgemm_scalar;
  const int64_t blocks = (W.Np + block_cols - 1) / block_cols;
  auto run = [&](int64_t b) {
    kernel(M, Aq, ldq, a_scale, W, b * block_cols, std::min(W.Np, (b + 1) * block_cols), accumulate, C, ldc, bias);
  };
  if (blocks > 1 && double(M) * double(W.N) * double(W.K) >= parallel_min_ops && omp_get_max_threads() > 1 &&
      !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) run(b);
  } else {
    for (int64_t b = 0; b < blocks; ++b) run(b);
  }
}

void qlinear(int64_t M, const float* A, int64_t lda, const QMatrix& W, bool accumulate, float* C, int64_t ldc,
             const float* bias) {
  thread_local std::vector<int8_t> q;
  thread_local std::vector<float> s;
  if (q.size() < size_t(M * W.Kp)) q.resize(size_t(M * W.Kp));
  if (s.size() < size_t(M)) s.resize(size_t(M));
  quantize_rows(M, W.K, A, lda, q.data(), W.Kp, s.data());
  qgemm(M, q.data(), W.Kp, s.data(), W, accumulate, C, ldc, bias);
}

}  // namespace seqgrad::quant
