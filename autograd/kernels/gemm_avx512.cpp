// GEMM kernels instantiated for xsimd::avx512bw; CMake builds this file with -march=x86-64-v4.
#include "autograd/kernels/gemm_impl.hpp"

namespace seqgrad::kernels {
SEQGRAD_GEMM_INSTANTIATE_ARCH(, xsimd::avx512bw)
}  // namespace seqgrad::kernels
