// Instantiates the optimizer update kernels for xsimd::fma3<xsimd::avx2> (flags set by CMake from the file name).
#define SEQGRAD_OPTIM_KERNEL_TU
#include "optim/update_impl.hpp"

namespace seqgrad::optim::kernels {
SEQGRAD_OPTIM_KERNELS(, xsimd::fma3<xsimd::avx2>, float)
SEQGRAD_OPTIM_KERNELS(, xsimd::fma3<xsimd::avx2>, double)
}  // namespace seqgrad::optim::kernels
