// GEMM kernels instantiated for xsimd::sse2; CMake builds this file with no -march flag (the x86-64 baseline).
#include "autograd/kernels/gemm_impl.hpp"

namespace seqgrad::kernels {
SEQGRAD_GEMM_INSTANTIATE_ARCH(, xsimd::sse2)
}  // namespace seqgrad::kernels
