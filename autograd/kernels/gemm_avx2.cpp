// GEMM kernels instantiated for xsimd::fma3<xsimd::avx2>; CMake builds this file with -march=x86-64-v3.
#include "autograd/kernels/gemm_impl.hpp"

namespace seqgrad::kernels {
SEQGRAD_GEMM_INSTANTIATE_ARCH(, xsimd::fma3<xsimd::avx2>)
}  // namespace seqgrad::kernels
