#include "autograd/kernels/arch.h"

namespace seqgrad::kernels {

namespace {
struct name_kernel {
  template <class Arch>
  const char* operator()(Arch) const noexcept { return Arch::name(); }
};
}  // namespace

const char* best_arch_name() {
  static auto f = xsimd::dispatch<arch_list>(name_kernel{});
  return f();
}

}  // namespace seqgrad::kernels
