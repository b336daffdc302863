// Instruction loops for bench/peaks.h, compiled with -march=x86-64-v4 -mavx512vnni.
#include "bench/peaks.h"

#include <immintrin.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace seqgrad::bench {
namespace {
bool has_avx512_vnni() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni"); }
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

double read_bandwidth(size_t bytes) {
  if (!has_avx512_vnni()) return 0;
  bytes = (bytes + 511) / 512 * 512;
  auto* buf = static_cast<uint8_t*>(std::aligned_alloc(64, bytes));
  std::memset(buf, 1, bytes);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    // Eight independent accumulators, so that the loads, not the adds, set the pace.
    __m512i acc[8];
    for (auto& a : acc) a = _mm512_setzero_si512();
    size_t total = 0;
    const double t0 = now();
    double t = t0;
    do {
      for (size_t i = 0; i < bytes; i += 512)
        for (int k = 0; k < 8; ++k)
          acc[k] = _mm512_add_epi32(acc[k], _mm512_load_si512(reinterpret_cast<const __m512i*>(buf + i + 64 * k)));
      total += bytes;
    } while ((t = now()) - t0 < 0.02);
    __m512i s = acc[0];
    for (int k = 1; k < 8; ++k) s = _mm512_add_epi32(s, acc[k]);
    if (_mm512_reduce_add_epi32(s) == 42) std::abort();  // keeps the loads alive
    if (double bw = double(total) / (t - t0); bw > best) best = bw;
  }
  std::free(buf);
  return best;
}

double vnni_peak_ops() {
  if (!has_avx512_vnni()) return 0;
  // 12 independent chains cover vpdpbusd's latency on every core we know of.
  __m512i acc[12];
  for (int k = 0; k < 12; ++k) acc[k] = _mm512_set1_epi32(k);
  const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(2);
  const int64_t iters = 2'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const double t0 = now();
    for (int64_t i = 0; i < iters; ++i)
      for (int k = 0; k < 12; ++k) {
        acc[k] = _mm512_dpbusd_epi32(acc[k], a, b);
        __asm__ volatile("" : "+v"(acc[k]));  // one instruction per chain per iteration, as written
      }
    const double ops = double(iters) * 12 * 64 * 2;  // 64 u8*s8 multiply-adds per instruction
    if (double r = ops / (now() - t0); r > best) best = r;
  }
  __m512i s = acc[0];
  for (int k = 1; k < 12; ++k) s = _mm512_add_epi32(s, acc[k]);
  if (_mm512_reduce_add_epi32(s) == 42) std::abort();
  return best;
}

}  // namespace seqgrad::bench
