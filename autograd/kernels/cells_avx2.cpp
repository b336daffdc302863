// Instantiates the recurrent-cell kernels for xsimd::fma3<xsimd::avx2> (flags set by CMake from the file name).
#define SEQGRAD_KERNEL_TU
#include "autograd/kernels/cells_impl.hpp"

namespace seqgrad::kernels {
SEQGRAD_INSTANTIATE_CELLS(xsimd::fma3<xsimd::avx2>, float)
SEQGRAD_INSTANTIATE_CELLS(xsimd::fma3<xsimd::avx2>, double)
}  // namespace seqgrad::kernels
