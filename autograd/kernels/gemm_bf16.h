// gemm()'s opt-in bfloat16 mode (autograd/matmul_precision.h): the blocked path's packed float
// panels converted to bfloat16 pairs and multiplied by AVX512_BF16 `vdpbf16ps`, which adds two
// bf16 x bf16 products per float32 lane: twice the FMA's work per instruction, float32 sums.
//
// Layouts, for the AVX-512 register tile of gemm_impl.hpp (mr = 14 rows, nr = 32 columns), in
// uint32 units each holding a pair (k even in the low half, k + 1 in the high half, zero past kc):
//   A: panels of mr rows, panel p at p * mr * kp_max, row r at r * kp_max + kp.
//   B: panels of nr columns, panel q at q * nr * kp, pair (kp, c) at kp * nr + c.
// with kp = ceil(kc / 2). Rounding to bf16 is to nearest even, as vcvtne2ps2bf16 does (and it
// reads float denormals as zero). The kernels are compiled for AVX512_BF16 (gemm_bf16.cpp) and run
// only in the mode, which set_enabled() allows on CPUs that have it; the mode's switch lives in
// gemm.cpp, compiled for any x86-64.
#pragma once

#include <cstdint>

namespace seqgrad::kernels::bf16 {

inline constexpr int64_t mr = 14, nr = 32;

bool cpu_supported();
bool enabled();               // the mode (off unless set_enabled(true))
void set_enabled(bool on);    // throws std::runtime_error when on and !cpu_supported()

// A float A block as gemm_pack_a_kernel lays it out (panel stride mr * kc_stride; trans: element
// (r, k) of a panel at k * mr + r, else at r * kc_stride + k) -> bf16 pairs, mc rows x kc.
void convert_a(bool trans, const float* pa, int64_t kc_stride, int64_t mc, int64_t kc, uint32_t* dst, int64_t kp_max);
// Float B panels as gemm_pack_b_kernel lays them out (panel q at q * nr * kc, (k, c) at k * nr + c,
// columns zero-padded to nr) -> bf16 pairs, nc columns x kc.
void convert_b(const float* pb, int64_t kc, int64_t nc, uint32_t* dst);
// C[0:mc, 0:nc] = (accumulate ? C : bias or 0) + A * B over the kc steps of the packed pairs.
void micro(int64_t mc, int64_t nc, int64_t kc, const uint32_t* pa, int64_t kp_max, const uint32_t* pb, float* c,
           int64_t ldc, bool accumulate, const float* bias);

}  // namespace seqgrad::kernels::bf16
