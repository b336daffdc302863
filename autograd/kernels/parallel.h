// The one way seqgrad's ops go parallel.
#pragma once

#include <cstdint>

namespace seqgrad::kernels {

// body(i) for i in [0, n), split statically over the OpenMP threads when `parallel`, else on the
// calling thread. The serial case never enters libgomp: even a false if() clause builds a thread
// team (with a heap allocation), which costs more than the tiny ops of a small RNN step.
template <class F>
void parallel_for(int64_t n, bool parallel, F&& body) {
  if (!parallel) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) body(i);
}

}  // namespace seqgrad::kernels
