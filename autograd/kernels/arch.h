// The instruction sets seqgrad's kernels are built for, best first.
//
// Each kernel family is a functor with a templated `operator()(Arch, ...)`, defined in
// `<family>_impl.hpp` and explicitly instantiated once per architecture in
// `<family>_avx512.cpp`, `<family>_avx2.cpp` and `<family>_sse2.cpp` (CMake gives the first two
// -march=x86-64-v4 / -march=x86-64-v3 by file name). xsimd::dispatch picks one at run time, so the
// library itself is built without -march and runs on any x86-64.
//
// xsimd 8.1's dispatcher is noexcept and calls the last arch unconditionally: kernels never throw
// and the list ends with the baseline.
#pragma once

#include <xsimd/xsimd.hpp>

namespace seqgrad::kernels {

using arch_list = xsimd::arch_list<xsimd::avx512bw, xsimd::fma3<xsimd::avx2>, xsimd::sse2>;

// The run-time dispatcher of kernel functor F, built on first use.
template <class F>
auto& dispatched() {
  static auto f = xsimd::dispatch<arch_list>(F{});
  return f;
}

// Name of the architecture the dispatcher picks on this machine ("avx512bw", "fma3+avx2", "sse2").
const char* best_arch_name();

}  // namespace seqgrad::kernels
