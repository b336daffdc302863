// The one way seqgrad's kernels and ops go parallel.
#pragma once

#include <algorithm>
#include <array>
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

constexpr int64_t kChunk = 1 << 14;        // elements per piece of parallel work
constexpr int64_t kParallelMin = 1 << 16;  // shorter arrays stay on the calling thread

// body(begin, end) over [0, n) in kChunk pieces, in parallel when n >= kParallelMin.
template <class F>
void chunked(int64_t n, F&& body) {
  if (n < kParallelMin) return body(int64_t(0), n);
  parallel_for((n + kChunk - 1) / kChunk, true, [&](int64_t c) { body(c * kChunk, std::min(n, (c + 1) * kChunk)); });
}

// Reduces [0, n): piece(begin, end) per kChunk piece, combined in chunk order by combine(acc, v),
// so the result has the same bits for any thread count. Partials live on the stack, a group of
// chunks at a time: no allocation.
template <class T, class Piece, class Combine>
T chunked_reduce(int64_t n, Piece&& piece, Combine&& combine) {
  if (n < kParallelMin) return piece(int64_t(0), n);
  constexpr int64_t kGroup = 64;
  int64_t chunks = (n + kChunk - 1) / kChunk;
  T acc = piece(int64_t(0), std::min(n, kChunk));
  for (int64_t c0 = 1; c0 < chunks; c0 += kGroup) {
    int64_t c1 = std::min(chunks, c0 + kGroup);
    std::array<T, kGroup> part;
    parallel_for(c1 - c0, true, [&](int64_t i) {
      int64_t c = c0 + i;
      part[i] = piece(c * kChunk, std::min(n, (c + 1) * kChunk));
    });
    for (int64_t c = c0; c < c1; ++c) acc = combine(acc, part[c - c0]);
  }
  return acc;
}

}  // namespace seqgrad::kernels
