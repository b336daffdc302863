// Instantiates the optimizer update kernels for xsimd::avx512bw (flags set by CMake from the file name).
#define SEQGRAD_OPTIM_KERNEL_TU
#include "optim/update_impl.hpp"

namespace seqgrad::optim::kernels {
SEQGRAD_OPTIM_KERNELS(, xsimd::avx512bw, float)
SEQGRAD_OPTIM_KERNELS(, xsimd::avx512bw, double)
}  // namespace seqgrad::optim::kernels
