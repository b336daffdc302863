// Opt-in bfloat16 matrix products: float32 tensors and weights, products in bf16.
//
//   seqgrad::set_matmul_precision(seqgrad::MatmulPrecision::bf16);  // throws without AVX512_BF16
//
// In bf16 mode the float32 matrix products that take the blocked GEMM path (every product whose
// op(B) has more than 4096 elements: linear, matmul, the recurrent layers' hidden and input
// products, and their backward) round both operands to bfloat16 (8-bit mantissa, nearest even)
// and sum the products in float32 with AVX512_BF16's vdpbf16ps, which does twice the work per
// instruction of a float32 FMA. Tensors, parameters, optimizer state and element-wise ops stay
// float32 ("master weights"); small and matrix-vector products stay float32 too. Each product's
// error is then about 2^-8 relative to the sum of its terms' magnitudes instead of 2^-24: fine for
// training and inference of typical recurrent models, not for gradient checks (float64 is never
// affected). Results stay deterministic and independent of the thread count.
//
// Off by default. The mode is global (all threads); switch it between steps, not during one. A
// recurrent layer's packed weight made while the mode is on runs in bf16 until it is repacked
// (each forward packs anew).
#pragma once

namespace seqgrad {

enum class MatmulPrecision { f32, bf16 };

// Whether this CPU can run MatmulPrecision::bf16 (it has AVX512_BF16).
bool bf16_matmul_supported();
// Sets the precision of float32 matrix products; throws std::runtime_error for bf16 on a CPU without AVX512_BF16.
void set_matmul_precision(MatmulPrecision precision);
MatmulPrecision matmul_precision();

}  // namespace seqgrad
