// Instruction loops for bench/peaks.h, compiled with -march=x86-64-v4 -mavx512vnni -mavx512bf16.
#include "bench/peaks.h"

#include <immintrin.h>

#include <ctime>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace seqgrad::bench {
namespace {
bool has_avx512_vnni() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni"); }
// This thread's CPU time: on a machine shared with other work, wall time would charge us for theirs.
double now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
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
    const size_t passes = std::max<size_t>(1, (size_t(8) << 20) / bytes);  // 8 MB between clock reads
    do {
      for (size_t p = 0; p < passes; ++p)
        for (size_t i = 0; i < bytes; i += 512)
          for (int k = 0; k < 8; ++k)
            acc[k] = _mm512_add_epi32(acc[k], _mm512_load_si512(reinterpret_cast<const __m512i*>(buf + i + 64 * k)));
      total += passes * bytes;
    } while ((t = now()) - t0 < 0.02);
    __m512i s = acc[0];
    for (int k = 1; k < 8; ++k) s = _mm512_add_epi32(s, acc[k]);
    if (_mm512_reduce_add_epi32(s) == 42) std::abort();  // keeps the loads alive
    if (double bw = double(total) / (t - t0); bw > best) best = bw;
  }
  std::free(buf);
  return best;
}

// Instructions per second of one core issuing `insn` (AT&T: insn b, a, acc) on 12 independent
// chains in registers zmm4..zmm15 (written in assembly: the compiler kept intrinsic accumulators
// on the stack), enough to cover the latency. The best of five: the core may be shared.
#define SEQGRAD_PEAK_LOOP(insn, a, b)                                                                        \
  [&] {                                                                                                      \
    const int64_t iters = 2'000'000;                                                                         \
    double best = 0;                                                                                         \
    for (int rep = 0; rep < 5; ++rep) {                                                                      \
      int64_t n = iters;                                                                                     \
      const double t0 = now();                                                                               \
      __asm__ volatile("1:\n" insn " %2, %1, %%zmm4\n " insn " %2, %1, %%zmm5\n " insn " %2, %1, %%zmm6\n " \
                       insn " %2, %1, %%zmm7\n " insn " %2, %1, %%zmm8\n " insn " %2, %1, %%zmm9\n "           \
                       insn " %2, %1, %%zmm10\n " insn " %2, %1, %%zmm11\n " insn " %2, %1, %%zmm12\n "        \
                       insn " %2, %1, %%zmm13\n " insn " %2, %1, %%zmm14\n " insn " %2, %1, %%zmm15\n "        \
                       "dec %0\n jnz 1b\n"                                                                  \
                       : "+r"(n)                                                                             \
                       : "v"(a), "v"(b)                                                                      \
                       : "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",  \
                         "xmm14", "xmm15", "cc");                                                            \
      if (double r = double(iters) * 12 / (now() - t0); r > best) best = r;                                  \
    }                                                                                                        \
    return best;                                                                                             \
  }()

double vnni_peak_ops() {
  if (!has_avx512_vnni()) return 0;
  const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(2);
  return SEQGRAD_PEAK_LOOP("vpdpbusd", a, b) * 64 * 2;  // 64 u8*s8 multiply-adds per instruction
}

double bf16_peak_flops() {
  if (!__builtin_cpu_supports("avx512bf16")) return 0;
  const __m512 a = _mm512_set1_ps(1e-3f), b = _mm512_set1_ps(1.f);
  return SEQGRAD_PEAK_LOOP("vdpbf16ps", a, b) * 16 * 2 * 2;  // 16 lanes x 2 products x 2 flops
}
#undef SEQGRAD_PEAK_LOOP

}  // namespace seqgrad::bench
