// Instantiates the recurrent-cell kernels for xsimd::avx512bw (flags set by CMake from the file name).
#define SEQGRAD_KERNEL_TU
#include "autograd/kernels/cells_impl.hpp"

namespace seqgrad::kernels {
SEQGRAD_INSTANTIATE_CELLS(xsimd::avx512bw, float)
SEQGRAD_INSTANTIATE_CELLS(xsimd::avx512bw, double)
}  // namespace seqgrad::kernels
