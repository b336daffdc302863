// The optimizers' inner loops over raw arrays: one fused pass per parameter that reads the
// gradient and the state buffers once and writes the parameter and the buffers in place. Written
// once with xsimd (update_impl.hpp), compiled per instruction set (update_{avx512,avx2,sse2}.cpp),
// dispatched at run time (update.cpp) like autograd/kernels/elementwise.h. Long arrays are split into
// fixed chunks over OpenMP threads; nothing here allocates, so a step after the first is
// allocation-free.
//
// The *Args structs carry every coefficient already rounded to the parameter's precision T and
// precomputed in double where PyTorch does (1 - beta, lr / bias_correction1, ...), so float32 runs
// see the same coefficients as torch.optim. Pointers of unused buffers may be null.
#pragma once

#include <cstdint>

namespace seqgrad::optim::kernels {

template <class T> struct SgdArgs {
  T lr, weight_decay, momentum, one_minus_dampening;
  bool nesterov;
  bool first;  // the first step copies d into the momentum buffer, without dampening
};

template <class T> struct AdamArgs {
  T decay;         // AdamW: 1 - lr*weight_decay multiplies p first; Adam: 1
  T weight_decay;  // Adam's L2 term added to the gradient; AdamW: 0
  T beta1, one_minus_beta1, beta2, one_minus_beta2;
  T step_size;  // lr / (1 - beta1^t)
  T bc2_sqrt;   // sqrt(1 - beta2^t)
  T eps;
  bool amsgrad;
};

template <class T> struct RmspropArgs {
  T lr, alpha, one_minus_alpha, eps, weight_decay, momentum;
  bool centered;
};

template <class T> struct AdagradArgs {
  T clr;  // lr / (1 + (t-1) lr_decay)
  T eps, weight_decay;
};

// p, g, buf: n values. buf is null when momentum == 0.
template <class T> void sgd(T* p, const T* g, T* buf, int64_t n, const SgdArgs<T>& a);
// m = exp_avg, v = exp_avg_sq, vmax = max_exp_avg_sq (null unless amsgrad).
template <class T> void adam(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamArgs<T>& a);
// sq = square_avg, gavg = grad_avg (null unless centered), buf = momentum_buffer (null unless momentum > 0).
template <class T> void rmsprop(T* p, const T* g, T* sq, T* gavg, T* buf, int64_t n, const RmspropArgs<T>& a);
template <class T> void adagrad(T* p, const T* g, T* sum, int64_t n, const AdagradArgs<T>& a);

// For clip_grad_norm: sum_i |x_i|^p for a finite p > 0 (p == 2 and p == 1 take exact fast paths),
// or max_i |x_i| for p == inf. NaN propagates. Partial sums over fixed chunks are added in chunk
// order, so the result has the same bits for any thread count.
template <class T> T norm_reduce(const T* x, int64_t n, double p);
template <class T> void scale(T* x, T c, int64_t n);         // x *= c
template <class T> void clamp(T* x, T lo, T hi, int64_t n);  // x = min(max(x, lo), hi); NaN stays NaN

}  // namespace seqgrad::optim::kernels
