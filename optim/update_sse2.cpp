// Instantiates the optimizer update kernels for xsimd::sse2 (flags set by CMake from the file name).
#define SEQGRAD_OPTIM_KERNEL_TU
#include "optim/update_impl.hpp"

namespace seqgrad::optim::kernels {
SEQGRAD_OPTIM_KERNELS(, xsimd::sse2, float)
SEQGRAD_OPTIM_KERNELS(, xsimd::sse2, double)
}  // namespace seqgrad::optim::kernels
