// Instantiates the recurrent-cell kernels for xsimd::sse2 (flags set by CMake from the file name).
#define SEQGRAD_KERNEL_TU
#include "autograd/kernels/cells_impl.hpp"

namespace seqgrad::kernels {
SEQGRAD_INSTANTIATE_CELLS(xsimd::sse2, float)
SEQGRAD_INSTANTIATE_CELLS(xsimd::sse2, double)
}  // namespace seqgrad::kernels
