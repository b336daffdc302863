// Dispatch and threading for update.h: picks the instruction set once per kernel and splits long
// arrays into fixed chunks over OpenMP threads (autograd/kernels/parallel.h). Updates are
// element-wise, so chunking only matters for the norm, whose per-chunk partials are combined in
// chunk order: the same bits for any thread count.
#include "optim/update.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "autograd/kernels/arch.h"
#include "autograd/kernels/parallel.h"
#include "optim/update_impl.hpp"

namespace seqgrad::optim::kernels {

namespace {

using seqgrad::kernels::chunked;
using seqgrad::kernels::dispatched;

template <class T> T* at(T* p, int64_t s) { return p ? p + s : nullptr; }

}  // namespace

template <class T> void sgd(T* p, const T* g, T* buf, int64_t n, const SgdArgs<T>& a) {
  chunked(n, [&](int64_t s, int64_t e) { dispatched<sgd_kernel>()(p + s, g + s, at(buf, s), e - s, a); });
}

template <class T> void adam(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamArgs<T>& a) {
  chunked(n,
          [&](int64_t s, int64_t e) { dispatched<adam_kernel>()(p + s, g + s, m + s, v + s, at(vmax, s), e - s, a); });
}

template <class T> void rmsprop(T* p, const T* g, T* sq, T* gavg, T* buf, int64_t n, const RmspropArgs<T>& a) {
  chunked(n, [&](int64_t s, int64_t e) {
    dispatched<rmsprop_kernel>()(p + s, g + s, sq + s, at(gavg, s), at(buf, s), e - s, a);
  });
}

template <class T> void adagrad(T* p, const T* g, T* sum, int64_t n, const AdagradArgs<T>& a) {
  chunked(n, [&](int64_t s, int64_t e) { dispatched<adagrad_kernel>()(p + s, g + s, sum + s, e - s, a); });
}

template <class T> T norm_reduce(const T* x, int64_t n, double p) {
  int mode = p == 2 ? 0 : p == 1 ? 1 : std::isinf(p) ? 3 : 2;
  auto piece = [&](int64_t s, int64_t e) { return dispatched<norm_kernel>()(x + s, e - s, mode, T(p)); };
  return seqgrad::kernels::chunked_reduce<T>(n, piece, [&](T r, T v) {
    return mode != 3 ? r + v : (v > r || v != v) ? v : r;  // the inf-norm: a NaN-propagating max
  });
}

template <class T> void scale(T* x, T c, int64_t n) {
  chunked(n, [&](int64_t s, int64_t e) { dispatched<scale_kernel>()(x + s, c, e - s); });
}

template <class T> void clamp(T* x, T lo, T hi, int64_t n) {
  chunked(n, [&](int64_t s, int64_t e) { dispatched<clamp_kernel>()(x + s, lo, hi, e - s); });
}

#define SEQGRAD_DEFINE(T)                                                             \
  template void sgd<T>(T*, const T*, T*, int64_t, const SgdArgs<T>&);                 \
  template void adam<T>(T*, const T*, T*, T*, T*, int64_t, const AdamArgs<T>&);       \
  template void rmsprop<T>(T*, const T*, T*, T*, T*, int64_t, const RmspropArgs<T>&); \
  template void adagrad<T>(T*, const T*, T*, int64_t, const AdagradArgs<T>&);         \
  template T norm_reduce<T>(const T*, int64_t, double);                               \
  template void scale<T>(T*, T, int64_t);                                             \
  template void clamp<T>(T*, T, T, int64_t);
SEQGRAD_DEFINE(float)
SEQGRAD_DEFINE(double)
#undef SEQGRAD_DEFINE

}  // namespace seqgrad::optim::kernels
