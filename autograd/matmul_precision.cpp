#include "autograd/matmul_precision.h"

#include "autograd/kernels/gemm_bf16.h"

namespace seqgrad {

bool bf16_matmul_supported() { return kernels::bf16::cpu_supported(); }
void set_matmul_precision(MatmulPrecision precision) { kernels::bf16::set_enabled(precision == MatmulPrecision::bf16); }
MatmulPrecision matmul_precision() { return kernels::bf16::enabled() ? MatmulPrecision::bf16 : MatmulPrecision::f32; }

}  // namespace seqgrad
