// What the op files (ops_*.cpp) share: dtype dispatch, argument checks, recording on the tape,
// gradient buffers and broadcasting plans. Internal: not installed, not part of the API.
//
// Conventions: builders check arguments and throw; kernels never do. Backward functions (one per
// op in ops.def, named <Op>_bwd) accumulate (+=) into the gradients of the inputs that need one.
// Dimension legend: R rows (all leading axes flattened), M/N/K matmul extents, B batch,
// I input features, O output features; an axis op views its tensor as (outer, n, inner).
#pragma once

#include <algorithm>
#include <array>
#include <initializer_list>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include "autograd/debug.h"
#include "autograd/kernels/elementwise.h"
#include "autograd/kernels/gemm.h"
#include "autograd/kernels/parallel.h"
#include "autograd/ops.h"
#include "autograd/tape.h"
#include "autograd/tensor.h"

namespace seqgrad {

namespace k = kernels;

namespace detail {

[[noreturn]] void throw_undefined(const char* op, const char* what);
bool records(const char* op, std::initializer_list<const Tensor*> ins);

// Calls f(float{}) or f(double{}) by dtype: one body serves both precisions.
template <class F>
decltype(auto) by_dtype(DType d, F&& f) {
  return d == DType::f32 ? f(float{}) : f(double{});
}

template <class T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw());
}
template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? ptr<T>(t) : nullptr;
}

// The debugging hooks (autograd/debug.cpp), reached only while DetectAnomaly or a Profiler is on:
// an op's start, its output (checked, timed), and the annotation a recorded node keeps.
void op_begin();
void op_end(const char* op, std::initializer_list<const Tensor*> ins, const Tensor& out, const Tensor* out2);
uint32_t note_site();

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);
// Every op builder's first call, so it also marks where the op starts for the profiler.
inline void check_defined(const char* op, const Tensor& t, const char* what) {
  if (g_debug) [[unlikely]] op_begin();
  if (!t.defined()) [[unlikely]] throw_undefined(op, what);
}

// Every op builder's last call, with its output(s) (kept or not): the debugging hooks see every op
// through here, recorded or not. True when the op must be recorded; rejects inputs whose tape was
// already freed.
inline bool recording(const char* op, std::initializer_list<const Tensor*> ins, const Tensor& out,
                      const Tensor* out2 = nullptr) {
  if (g_debug) [[unlikely]] op_end(op, ins, out, out2);
  return records(op, ins);
}
// Records n on this thread's tape, marking which inputs want a gradient.
void record(Node&& n);

// The gradient buffer of t, created as zeros on first use.
Tensor grad_of(const Tensor& t);
// The gradient buffer of t and whether it was just created. A fresh one is uninitialised: the
// caller's first contribution overwrites it (beta = 0, a copy), which saves a pass of zeros.
std::pair<Tensor, bool> grad_slot(const Tensor& t);
// grad(t) += contribution, summed over the axes where t was broadcast to contribution's shape.
void accumulate(const Tensor& t, const Tensor& contribution);

// Broadcasting: shapes collapsed into (outer rows) x (inner run) with per-operand strides.
struct Broadcast {
  int rank = 0;  // collapsed rank; the last axis is the inner run
  std::array<int64_t, Shape::kMaxRank> size{};
  std::array<std::array<int64_t, Shape::kMaxRank>, 3> stride{};  // out, a, b (0: broadcast)

  int64_t inner() const { return rank ? size[rank - 1] : 1; }
  int64_t rows() const {
    int64_t r = 1;
    for (int i = 0; i + 1 < rank; ++i) r *= size[i];
    return r;
  }
  // Element offsets of row `row` in each operand.
  std::array<int64_t, 3> offsets(int64_t row) const {
    std::array<int64_t, 3> off{};
    for (int i = rank - 2; i >= 0; --i) {
      int64_t idx = row % size[i];
      row /= size[i];
      for (int o = 0; o < 3; ++o) off[o] += idx * stride[o][i];
    }
    return off;
  }
};
Broadcast plan_broadcast(const Shape& out, const Shape& a, const Shape& b);

// Views t as (outer, n, inner) around `axis`.
struct AxisView {
  int64_t outer, n, inner;
};
inline AxisView axis_view(const Shape& s, int axis) {
  int64_t outer = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  return {outer, s[axis], s.stride(axis)};
}
// Product of all extents but the last: the rows of a (..., C) tensor.
inline int64_t leading(const Shape& s) {
  int64_t r = 1;
  for (int i = 0; i + 1 < s.rank(); ++i) r *= s[i];
  return r;
}

// Class indices checked against [0, limit), stored as float64 values in Node::saved (exact up to 2^53).
Tensor index_tensor(const char* op, std::span<const int64_t> idx, int64_t limit);

// Every op's backward, defined next to its builder in ops_<family>.cpp.
#define SEQGRAD_OP(name, str, n_in) void name##_bwd(const Node& n);
#include "autograd/ops.def"
#undef SEQGRAD_OP

}  // namespace detail

// The packed copies of a PackedWeight (ops_cells.cpp), which the nodes of linear and the cells share.
struct PackedWeight::Packs {
  Tensor fwd, bwd;  // packed op(B) = W^T (for x W^T) and W (for dy W); undefined when the GEMM reads W in place
  // Guards the lazy backward packing. Not a std::once_flag: completing one makes a futex system
  // call, and a sequence makes a new PackedWeight, so every training step paid one.
  std::mutex bwd_mutex;
  bool bwd_done = false;
  bool fwd_bf16 = false, bwd_bf16 = false;  // packed as bf16 pairs (the matmul precision when packed)
  // XpUse::consume: the xp this sequence's cells overwrite, its steps in recording order (and a
  // flag per step), and whether a backward pass has begun overwriting them with gradients.
  const TensorImpl* xp = nullptr;
  std::vector<int64_t> steps;
  std::vector<char> consumed;
  bool backward_started = false;

  // The packed forms of w, the PackedWeight's own tensor.
  template <class T>
  k::PackedB<T> forward(const Tensor& w) const {
    return {.trans = true, .K = w.size(1), .N = w.size(0), .src = detail::ptr<T>(w), .ldb = w.size(1),
            .data = fwd.defined() ? detail::ptr<T>(fwd) : nullptr, .bf16 = fwd_bf16};
  }
  template <class T>
  k::PackedB<T> backward(const Tensor& w) {
    k::PackedB<T> b{.trans = false, .K = w.size(0), .N = w.size(1), .src = detail::ptr<T>(w), .ldb = w.size(1)};
    {
      std::lock_guard lock(bwd_mutex);
      if (!bwd_done)
        if (int64_t n = k::gemm_packed_size<T>(b.K, b.N)) {
          bwd = Tensor::empty({n}, w.dtype());
          b.data = detail::ptr<T>(bwd);
          bwd_bf16 = b.bf16;
          k::gemm_pack_b(b);
        }
      bwd_done = true;
    }
    b.data = bwd.defined() ? detail::ptr<T>(bwd) : nullptr;
    b.bf16 = bwd_bf16;
    return b;
  }
};

}  // namespace seqgrad
