// Machine ceilings the inference benchmarks report against, measured by instruction loops
// (bench/peaks.cpp, built for AVX-512 + VNNI + BF16; each returns 0 on CPUs without its instructions). Timed in the
// thread's CPU time, so compare them with the benchmarks' CPU column on a busy machine.
#pragma once

#include <cstddef>

namespace seqgrad::bench {
// Bytes per second reading a buffer of `bytes` over and over: the bandwidth of the cache level
// (or memory) a working set of that size lives in.
double read_bandwidth(size_t bytes);
// int8 multiply-adds x 2 per second of one core issuing independent vpdpbusd on zmm registers.
double vnni_peak_ops();
// FLOP/s of one core issuing independent vdpbf16ps (AVX512_BF16) on zmm registers, 0 without it:
// the ceiling of the bf16 matmul mode, to set beside the float32 FMA peak.
double bf16_peak_flops();
}  // namespace seqgrad::bench
