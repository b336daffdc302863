// The op files' shared helpers (ops_internal.h) and the dispatch of backward over every op.
#include <cstring>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "autograd/ops_internal.h"

namespace seqgrad {
namespace detail {

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    throw std::invalid_argument(fmt::format("{}: dtype mismatch: {} {} and {} {}", op, a.shape(), a.dtype(), b.shape(),
                                            b.dtype()));
}

void throw_undefined(const char* op, const char* what) {
  throw std::invalid_argument(fmt::format("{}: {} is an undefined tensor", op, what));
}

bool records(const char* op, std::initializer_list<const Tensor*> ins) {
  if (!grad_mode_enabled()) return false;
  bool any = false;
  int i = 0;
  for (const Tensor* t : ins) {
    if (t->defined() && t->requires_grad()) {
      if (!t->is_leaf() && t->impl().epoch != Tape::current().epoch())
        throw std::invalid_argument(fmt::format(
            "{}: input {} was computed on a tape already freed by backward(); detach() it to carry it into a new step "
            "(truncated BPTT), or recompute it",
            op, i));
      any = true;
    }
    ++i;
  }
  return any;
}

void record(Node&& n) {
  for (size_t i = 0; i < n.in.size(); ++i) n.needs_grad[i] = n.in[i].defined() && n.in[i].requires_grad();
  if (g_debug) [[unlikely]] n.site = note_site();
  Tape::current().record(std::move(n));
}

Tensor grad_of(const Tensor& t) {
  TensorImpl& impl = t.impl();
  if (!impl.grad) impl.grad = zeros(t.shape(), t.dtype()).impl_ptr();
  return Tensor(impl.grad);
}

std::pair<Tensor, bool> grad_slot(const Tensor& t) {
  TensorImpl& impl = t.impl();
  if (impl.grad) return {Tensor(impl.grad), false};
  impl.grad = Tensor::empty(t.shape(), t.dtype()).impl_ptr();
  return {Tensor(impl.grad), true};
}

Broadcast plan_broadcast(const Shape& out, const Shape& a, const Shape& b) {
  int r = out.rank();
  std::array<std::array<int64_t, Shape::kMaxRank>, 3> st{};
  const Shape* shapes[3] = {&out, &a, &b};
  for (int o = 0; o < 3; ++o) {
    const Shape& s = *shapes[o];
    int64_t run = 1;
    for (int i = r - 1; i >= 0; --i) {
      int j = i - (r - s.rank());
      int64_t d = j >= 0 ? s[j] : 1;
      st[o][i] = (d == 1 && out[i] != 1) ? 0 : run;
      run *= d;
    }
  }
  Broadcast p;
  for (int i = 0; i < r; ++i) {
    if (out[i] == 1) continue;
    bool merge = p.rank > 0;
    for (int o = 0; o < 3 && merge; ++o) merge = st[o][i] * out[i] == p.stride[o][p.rank - 1];
    if (merge) {
      p.size[p.rank - 1] *= out[i];
      for (int o = 0; o < 3; ++o) p.stride[o][p.rank - 1] = st[o][i];
    } else {
      p.size[p.rank] = out[i];
      for (int o = 0; o < 3; ++o) p.stride[o][p.rank] = st[o][i];
      ++p.rank;
    }
  }
  return p;
}

// dst (shape s) += src (shape full), summing over the axes where s was broadcast.
template <class T>
void reduce_acc(T* dst, const Shape& s, const T* src, const Shape& full) {
  if (s == full) {
    k::axpy(dst, T(1), src, full.numel());
    return;
  }
  Broadcast p = plan_broadcast(full, s, s);
  int64_t n = p.inner(), rows = p.rows(), inner_stride = p.rank ? p.stride[1][p.rank - 1] : 0;
  for (int64_t row = 0; row < rows; ++row) {
    auto off = p.offsets(row);
    if (inner_stride)
      k::axpy(dst + off[1], T(1), src + off[0], n);
    else
      dst[off[1]] += k::sum(src + off[0], n);
  }
}

void accumulate(const Tensor& t, const Tensor& contribution) {
  by_dtype(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (t.shape() != contribution.shape())
      return reduce_acc(ptr<T>(grad_of(t)), t.shape(), ptr<T>(contribution), contribution.shape());
    auto [g, fresh] = grad_slot(t);
    const Tensor c = contribution.contiguous() ? contribution : contribution.clone();
    if (fresh)
      std::memcpy(ptr<T>(g), ptr<T>(c), size_t(t.numel()) * sizeof(T));
    else if (g.contiguous())
      k::axpy(ptr<T>(g), T(1), ptr<T>(c), t.numel());
    else  // a row view's gradient (a sequence layer's step state): row by row
      for (int64_t r = 0, cols = g.size(-1), rows = t.numel() / std::max<int64_t>(cols, 1); r < rows; ++r)
        k::axpy(static_cast<T*>(g.raw_rows()) + r * g.row_stride(), T(1), ptr<T>(c) + r * cols, cols);
  });
}

void accumulate_grad(const Tensor& t, const Tensor& g) { accumulate(t, g); }

// layers/quantize.cpp records the int8 layers' outputs as this op (shared: the layer's name), so
// that a backward reaching one says why there is no gradient instead of skipping it silently.
void Int8Inference_bwd(const Node& n) {
  throw std::logic_error(fmt::format(
      "backward: {} runs int8 weights (quantize_dynamic): quantized layers are inference only and have no "
      "gradient; train the float model, then quantize it",
      *static_cast<const std::string*>(n.shared.get())));
}

void backward_node(const Node& n) {
  switch (n.op) {
#define SEQGRAD_OP(name, str, n_in) \
  case Op::name:                    \
    name##_bwd(n);                  \
    break;
#include "autograd/ops.def"
#undef SEQGRAD_OP
  }
}
}  // namespace detail

}  // namespace seqgrad
