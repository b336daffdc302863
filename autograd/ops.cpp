// Every primitive op: its builder (checks, forward kernel, tape record) next to its backward.
// Builders check arguments and throw; kernels never do. Backward functions accumulate (+=) into
// the gradients of the inputs that need one.
//
// Dimension legend: R rows (all leading axes flattened), M/N/K matmul extents, B batch,
// I input features, O output features; an axis op views its tensor as (outer, n, inner).
#include "autograd/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

#include "autograd/kernels/cells.h"
#include "autograd/kernels/elementwise.h"
#include "autograd/kernels/gemm.h"
#include "autograd/kernels/parallel.h"
#include "autograd/tape.h"

namespace seqgrad {

namespace k = kernels;

namespace {

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

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    throw std::invalid_argument(fmt::format("{}: dtype mismatch: {} {} and {} {}", op, a.shape(), a.dtype(), b.shape(),
                                            b.dtype()));
}

void check_defined(const char* op, const Tensor& t, const char* what) {
  if (!t.defined()) throw std::invalid_argument(fmt::format("{}: {} is an undefined tensor", op, what));
}

// True when the op must be recorded; rejects inputs whose tape was already freed.
bool recording(const char* op, std::initializer_list<const Tensor*> ins) {
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
  Tape::current().record(std::move(n));
}

// The gradient buffer of t, created as zeros on first use.
Tensor grad_of(const Tensor& t) {
  TensorImpl& impl = t.impl();
  if (!impl.grad) impl.grad = zeros(t.shape(), t.dtype()).impl_ptr();
  return Tensor(impl.grad);
}

// The gradient buffer of t and whether it was just created. A fresh one is uninitialised: the
// caller's first contribution overwrites it (beta = 0, a copy), which saves a pass of zeros.
std::pair<Tensor, bool> grad_slot(const Tensor& t) {
  TensorImpl& impl = t.impl();
  if (impl.grad) return {Tensor(impl.grad), false};
  impl.grad = Tensor::empty(t.shape(), t.dtype()).impl_ptr();
  return {Tensor(impl.grad), true};
}

// ---- broadcasting: collapse shapes into (outer rows) x (inner run) with per-operand strides.
struct Broadcast {
  int rank = 0;                   // collapsed rank; the last axis is the inner run
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

// Views t as (outer, n, inner) around `axis`.
struct AxisView {
  int64_t outer, n, inner;
};
// Product of all extents but the last: the rows of a (..., C) tensor.
int64_t leading(const Shape& s) {
  int64_t r = 1;
  for (int i = 0; i + 1 < s.rank(); ++i) r *= s[i];
  return r;
}

AxisView axis_view(const Shape& s, int axis) {
  int64_t outer = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  return {outer, s[axis], s.stride(axis)};
}

}  // namespace

namespace detail {
void accumulate_grad(const Tensor& t, const Tensor& g) { accumulate(t, g); }
}  // namespace detail

// ================================================================ element-wise binary
namespace {

constexpr k::Binary binary_kind(Op op) {
  switch (op) {
    case Op::Sub: return k::Binary::sub;
    case Op::Mul: return k::Binary::mul;
    case Op::Div: return k::Binary::div;
    default: return k::Binary::add;
  }
}

Tensor binary_op(Op op, const Tensor& a, const Tensor& b) {
  const char* name = op_name(op);
  check_defined(name, a, "a");
  check_defined(name, b, "b");
  check_same_dtype(name, a, b);
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor y = Tensor::empty(out_shape, a.dtype());
  by_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Broadcast p = plan_broadcast(out_shape, a.shape(), b.shape());
    int64_t n = p.inner(), rows = p.rows();
    int64_t sa = p.rank ? p.stride[1][p.rank - 1] : 0, sb = p.rank ? p.stride[2][p.rank - 1] : 0;
    if (p.rank == 0) sa = sb = 0;
    k::parallel_for(rows, rows > 1 && rows * n >= (1 << 16), [&](int64_t row) {
      auto off = p.offsets(row);
      k::binary(binary_kind(op), ptr<T>(y) + off[0], ptr<T>(a) + off[1], sa, ptr<T>(b) + off[2], sb, n);
    });
  });
  if (recording(name, {&a, &b})) record({.op = op, .in = {a, b}, .out = y});
  return y;
}

// grad(x) += alpha * (g op other) (other broadcast to g's shape), reduced to x's shape.
void binary_grad(const Tensor& x, k::Binary op, double alpha, const Tensor& g, const Tensor& other) {
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (x.shape() == g.shape() && other.shape() == g.shape()) {
      k::binary_acc(op, T(alpha), ptr<T>(grad_of(x)), ptr<T>(g), 1, ptr<T>(other), 1, g.numel());
      return;
    }
    Tensor tmp = zeros(g.shape(), g.dtype());
    Broadcast p = plan_broadcast(g.shape(), g.shape(), other.shape());
    int64_t n = p.inner(), so = p.rank ? p.stride[2][p.rank - 1] : 0;
    for (int64_t row = 0, rows = p.rows(); row < rows; ++row) {
      auto off = p.offsets(row);
      k::binary_acc(op, T(alpha), ptr<T>(tmp) + off[0], ptr<T>(g) + off[1], 1, ptr<T>(other) + off[2], so, n);
    }
    accumulate(x, tmp);
  });
}

void Add_bwd(const Node& n) {
  Tensor g = n.out.grad();
  if (n.needs_grad[0]) accumulate(n.in[0], g);
  if (n.needs_grad[1]) accumulate(n.in[1], g);
}

void Sub_bwd(const Node& n) {
  Tensor g = n.out.grad();
  if (n.needs_grad[0]) accumulate(n.in[0], g);
  if (n.needs_grad[1]) accumulate(n.in[1], mul(g, -1.0));
}

void Mul_bwd(const Node& n) {
  Tensor g = n.out.grad();
  if (n.needs_grad[0]) binary_grad(n.in[0], k::Binary::mul, 1.0, g, n.in[1]);
  if (n.needs_grad[1]) binary_grad(n.in[1], k::Binary::mul, 1.0, g, n.in[0]);
}

void Div_bwd(const Node& n) {
  Tensor g = n.out.grad();
  if (n.needs_grad[0]) binary_grad(n.in[0], k::Binary::div, 1.0, g, n.in[1]);
  // d(a/b)/db = -(a/b)/b = -y/b
  if (n.needs_grad[1]) binary_grad(n.in[1], k::Binary::div, -1.0, mul(g, n.out), n.in[1]);
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary_op(Op::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op(Op::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(Op::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op(Op::Div, a, b); }

// ================================================================ scalar operand
namespace {

Tensor affine_op(Op op, const Tensor& x, double scale, double shift, double attr) {
  check_defined(op_name(op), x, "x");
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    k::affine(ptr<T>(y), ptr<T>(x), T(scale), T(shift), x.numel());
  });
  if (recording(op_name(op), {&x})) record({.op = op, .in = {x}, .out = y, .attr = attr});
  return y;
}

void AddScalar_bwd(const Node& n) { accumulate(n.in[0], n.out.grad()); }

void MulScalar_bwd(const Node& n) {
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    k::axpy(ptr<T>(grad_of(n.in[0])), T(n.attr), ptr<T>(n.out.grad()), n.out.numel());
  });
}

void PowScalar_bwd(const Node& n) {
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    k::pow_scalar_bwd(ptr<T>(grad_of(n.in[0])), ptr<T>(n.in[0]), T(n.attr), ptr<T>(n.out.grad()), n.out.numel());
  });
}

}  // namespace

Tensor add(const Tensor& a, double s) { return affine_op(Op::AddScalar, a, 1.0, s, s); }
Tensor mul(const Tensor& a, double s) { return affine_op(Op::MulScalar, a, s, 0.0, s); }
Tensor neg(const Tensor& a) { return mul(a, -1.0); }

Tensor pow(const Tensor& x, double p) {
  check_defined("pow", x, "x");
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    k::pow_scalar(ptr<T>(y), ptr<T>(x), T(p), x.numel());
  });
  if (recording("pow", {&x})) record({.op = Op::PowScalar, .in = {x}, .out = y, .attr = p});
  return y;
}

// ================================================================ unary
namespace {

Tensor unary_op(Op op, k::Unary kind, const Tensor& x) {
  check_defined(op_name(op), x, "x");
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    k::unary(kind, ptr<T>(y), ptr<T>(x), x.numel());
  });
  if (recording(op_name(op), {&x})) record({.op = op, .in = {x}, .out = y});
  return y;
}

// needs_x / needs_y: which of input and result the derivative is written with.
void unary_grad(const Node& n, k::Unary kind, bool needs_x) {
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = needs_x ? ptr<T>(n.in[0]) : nullptr;
    const T* y = needs_x ? nullptr : ptr<T>(n.out);
    k::unary_bwd(kind, ptr<T>(grad_of(n.in[0])), x, y, ptr<T>(n.out.grad()), n.out.numel());
  });
}

void Exp_bwd(const Node& n) { unary_grad(n, k::Unary::exp, false); }
void Log_bwd(const Node& n) { unary_grad(n, k::Unary::log, true); }
void Tanh_bwd(const Node& n) { unary_grad(n, k::Unary::tanh, false); }
void Sigmoid_bwd(const Node& n) { unary_grad(n, k::Unary::sigmoid, false); }
void Relu_bwd(const Node& n) { unary_grad(n, k::Unary::relu, true); }

}  // namespace

Tensor exp(const Tensor& x) { return unary_op(Op::Exp, k::Unary::exp, x); }
Tensor log(const Tensor& x) { return unary_op(Op::Log, k::Unary::log, x); }
Tensor tanh(const Tensor& x) { return unary_op(Op::Tanh, k::Unary::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary_op(Op::Sigmoid, k::Unary::sigmoid, x); }
Tensor relu(const Tensor& x) { return unary_op(Op::Relu, k::Unary::relu, x); }

// ================================================================ matmul, linear
Tensor matmul(const Tensor& a, const Tensor& b) {
  check_defined("matmul", a, "a");
  check_defined("matmul", b, "b");
  check_same_dtype("matmul", a, b);
  bool ok = (a.rank() == 2 && b.rank() == 2) || (a.rank() == 3 && (b.rank() == 2 || (b.rank() == 3 && b.size(0) == a.size(0))));
  if (!ok || a.size(-1) != b.size(-2))
    throw std::invalid_argument(fmt::format(
        "matmul: a is {} but b is {}; expected (M,K)@(K,N), (B,M,K)@(K,N) or (B,M,K)@(B,K,N)", a.shape(), b.shape()));
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  Shape out_shape = a.rank() == 2 ? Shape{M, N} : Shape{a.size(0), M, N};
  Tensor y = Tensor::empty(out_shape, a.dtype());
  by_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (b.rank() == 2)  // (B,M,K)@(K,N) is one (B*M,K)@(K,N) product
      k::gemm<T>(false, false, leading(a.shape()), N, K, ptr<T>(a), K, ptr<T>(b), N, T(0), ptr<T>(y), N);
    else
      for (int64_t i = 0; i < a.size(0); ++i)
        k::gemm<T>(false, false, M, N, K, ptr<T>(a) + i * M * K, K, ptr<T>(b) + i * K * N, N, T(0),
                   ptr<T>(y) + i * M * N, N);
  });
  if (recording("matmul", {&a, &b})) record({.op = Op::Matmul, .in = {a, b}, .out = y});
  return y;
}

namespace {
void Matmul_bwd(const Node& n) {
  const Tensor &a = n.in[0], &b = n.in[1];
  Tensor g = n.out.grad();
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  by_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (b.rank() == 2) {
      int64_t R = leading(a.shape());
      if (n.needs_grad[0])  // da (R,K) += g (R,N) @ b^T
        k::gemm<T>(false, true, R, K, N, ptr<T>(g), N, ptr<T>(b), N, T(1), ptr<T>(grad_of(a)), K);
      if (n.needs_grad[1])  // db (K,N) += a^T (K,R) @ g (R,N)
        k::gemm<T>(true, false, K, N, R, ptr<T>(a), K, ptr<T>(g), N, T(1), ptr<T>(grad_of(b)), N);
      return;
    }
    for (int64_t i = 0; i < a.size(0); ++i) {
      const T* gi = ptr<T>(g) + i * M * N;
      if (n.needs_grad[0])
        k::gemm<T>(false, true, M, K, N, gi, N, ptr<T>(b) + i * K * N, N, T(1), ptr<T>(grad_of(a)) + i * M * K, K);
      if (n.needs_grad[1])
        k::gemm<T>(true, false, K, N, M, ptr<T>(a) + i * M * K, K, gi, N, T(1), ptr<T>(grad_of(b)) + i * K * N, N);
    }
  });
}

// db (O) += column sums of g (R,O). Columns are split among threads, rows are added in order,
// so the sum is the same for any thread count.
template <class T>
void column_sum_acc(T* db, const T* g, int64_t R, int64_t O) {
  if (O < 16) {  // narrower than a vector (a Linear(H, 1) head): plain loops beat R kernel calls
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < O; ++c) db[c] += g[r * O + c];
    return;
  }
  constexpr int64_t kCols = 256;
  int64_t blocks = (O + kCols - 1) / kCols;
  k::parallel_for(blocks, blocks > 1 && R * O >= (1 << 16), [&](int64_t c) {
    int64_t c0 = c * kCols, w = std::min(O, c0 + kCols) - c0;
    for (int64_t r = 0; r < R; ++r) k::axpy(db + c0, T(1), g + r * O + c0, w);
  });
}
}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_defined("linear", x, "x");
  check_defined("linear", w, "weight");
  check_same_dtype("linear", x, w);
  if (x.rank() < 1 || w.rank() != 2 || x.size(-1) != w.size(1))
    throw std::invalid_argument(
        fmt::format("linear: x is {} and weight is {}; expected x (..., I) and weight (O, I)", x.shape(), w.shape()));
  int64_t I = w.size(1), O = w.size(0), R = leading(x.shape());
  if (b.defined()) {
    check_same_dtype("linear", x, b);
    if (b.rank() != 1 || b.size(0) != O)
      throw std::invalid_argument(fmt::format("linear: bias is {} but weight is {}; expected bias ({},)", b.shape(), w.shape(), O));
  }
  Shape out_shape = x.shape();
  out_shape[x.rank() - 1] = O;
  Tensor y = Tensor::empty(out_shape, x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    k::gemm<T>(false, true, R, O, I, ptr<T>(x), I, ptr<T>(w), I, T(0), ptr<T>(y), O, ptr_or_null<T>(b));
  });
  if (recording("linear", {&x, &w, &b})) record({.op = Op::Linear, .in = {x, w, b}, .out = y});
  return y;
}

namespace {
void Linear_bwd(const Node& n) {
  const Tensor &x = n.in[0], &w = n.in[1];
  Tensor g = n.out.grad();
  int64_t I = w.size(1), O = w.size(0), R = leading(x.shape());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (n.needs_grad[0]) {  // dx (R,I) += g (R,O) @ w (O,I)
      auto [dx, fresh] = grad_slot(x);
      k::gemm<T>(false, false, R, I, O, ptr<T>(g), O, ptr<T>(w), I, T(!fresh), ptr<T>(dx), I);
    }
    if (n.needs_grad[1]) {  // dw (O,I) += g^T (O,R) @ x (R,I)
      auto [dw, fresh] = grad_slot(w);
      k::gemm<T>(true, false, O, I, R, ptr<T>(g), O, ptr<T>(x), I, T(!fresh), ptr<T>(dw), I);
    }
    if (n.needs_grad[2]) column_sum_acc(ptr<T>(grad_of(n.in[2])), ptr<T>(g), R, O);
  });
}
}  // namespace

// ================================================================ shape ops
Tensor reshape(const Tensor& x, const Shape& shape) {
  check_defined("reshape", x, "x");
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < s.rank(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) throw std::invalid_argument(fmt::format("reshape: more than one -1 in {}", shape));
      infer = i;
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0 && known > 0 && x.numel() % known == 0) s[infer] = x.numel() / known;
  if (s.numel() != x.numel() || (infer >= 0 && s[infer] < 0))
    throw std::invalid_argument(
        fmt::format("reshape: cannot view a tensor of shape {} ({} elements) as {}", x.shape(), x.numel(), shape));
  const bool rows_kept = s.rank() && x.rank() && s[s.rank() - 1] == x.shape()[x.rank() - 1];
  if (!x.contiguous() && !rows_kept)
    throw std::invalid_argument(fmt::format(
        "reshape: a strided row view {} can only be reshaped keeping its last extent, not to {}", x.shape(), s));
  auto impl = new_impl();
  impl->shape = s;
  impl->dtype = x.dtype();
  impl->storage = x.impl().storage;
  impl->offset = x.impl().offset;
  impl->row_stride = x.impl().row_stride;
  Tensor y(std::move(impl));
  if (recording("reshape", {&x})) record({.op = Op::Reshape, .in = {x}, .out = y});
  return y;
}

namespace {
void Reshape_bwd(const Node& n) {
  Tensor g = n.out.grad();
  g = (g.contiguous() ? g.detach() : g.clone()).reshape(n.in[0].shape());
  TensorImpl& x = n.in[0].impl();
  if (x.grad)
    accumulate(n.in[0], g);
  else
    x.grad = g.impl_ptr();  // a view of the output's gradient, which the tape drops next: no copy
}

// out = x with axes a0 < a1 swapped; x viewed as (P, n0, Q, n1, S).
template <class T>
void swap_axes(T* out, const T* x, const Shape& s, int a0, int a1, bool acc) {
  int64_t P = 1, Q = 1, S = s.stride(a1), n0 = s[a0], n1 = s[a1];
  for (int i = 0; i < a0; ++i) P *= s[i];
  for (int i = a0 + 1; i < a1; ++i) Q *= s[i];
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < n0; ++i)
      for (int64_t q = 0; q < Q; ++q)
        for (int64_t j = 0; j < n1; ++j) {
          const T* src = x + (((p * n0 + i) * Q + q) * n1 + j) * S;
          T* dst = out + (((p * n1 + j) * Q + q) * n0 + i) * S;
          if (acc)
            k::axpy(dst, T(1), src, S);
          else
            std::memcpy(dst, src, size_t(S) * sizeof(T));
        }
}
}  // namespace

Tensor transpose(const Tensor& x, int axis0, int axis1) {
  check_defined("transpose", x, "x");
  int a0 = normalize_axis(axis0, x.rank(), "transpose"), a1 = normalize_axis(axis1, x.rank(), "transpose");
  if (a0 > a1) std::swap(a0, a1);
  Shape s = x.shape();
  std::swap(s[a0], s[a1]);
  Tensor y = Tensor::empty(s, x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (a0 == a1)
      std::memcpy(ptr<T>(y), ptr<T>(x), size_t(x.numel()) * sizeof(T));
    else
      swap_axes(ptr<T>(y), ptr<T>(x), x.shape(), a0, a1, false);
  });
  if (recording("transpose", {&x})) record({.op = Op::Transpose, .in = {x}, .out = y, .iattr = {a0, a1}});
  return y;
}

namespace {
void Transpose_bwd(const Node& n) {
  int a0 = int(n.iattr[0]), a1 = int(n.iattr[1]);
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (a0 == a1)
      k::axpy(ptr<T>(grad_of(n.in[0])), T(1), ptr<T>(n.out.grad()), n.out.numel());
    else
      swap_axes(ptr<T>(grad_of(n.in[0])), ptr<T>(n.out.grad()), n.out.shape(), a0, a1, true);
  });
}

// Copies (or accumulates) the block [start, start+len) of `axis` between a big tensor viewed as
// (outer, n, inner) and a small one viewed as (outer, len, inner).
template <class T>
void block_copy(T* small, const T* big, AxisView v, int64_t start, int64_t len, bool to_big, bool acc) {
  int64_t run = len * v.inner;
  for (int64_t o = 0; o < v.outer; ++o) {
    T* s = small + o * run;
    T* b = const_cast<T*>(big) + (o * v.n + start) * v.inner;
    T* dst = to_big ? b : s;
    const T* src = to_big ? s : b;
    if (acc)
      k::axpy(dst, T(1), src, run);
    else
      std::memcpy(dst, src, size_t(run) * sizeof(T));
  }
}

Tensor slice_like(Op op, const Tensor& x, int axis, int64_t start, int64_t len, Shape out_shape) {
  Tensor y = Tensor::empty(out_shape, x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    block_copy(ptr<T>(y), ptr<T>(x), axis_view(x.shape(), axis), start, len, false, false);
  });
  if (recording(op_name(op), {&x})) record({.op = op, .in = {x}, .out = y, .iattr = {axis, start, len}});
  return y;
}

void slice_like_bwd(const Node& n) {
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    block_copy(ptr<T>(n.out.grad()), ptr<T>(grad_of(n.in[0])), axis_view(n.in[0].shape(), int(n.iattr[0])),
               n.iattr[1], n.iattr[2], true, true);
  });
}
void Select_bwd(const Node& n) { slice_like_bwd(n); }
void Slice_bwd(const Node& n) { slice_like_bwd(n); }
}  // namespace

Tensor select(const Tensor& x, int axis, int64_t index) {
  check_defined("select", x, "x");
  int a = normalize_axis(axis, x.rank(), "select");
  if (index < -x.size(a) || index >= x.size(a))
    throw std::invalid_argument(fmt::format("select: index {} is out of range for axis {} of shape {}", index, a, x.shape()));
  if (index < 0) index += x.size(a);
  return slice_like(Op::Select, x, a, index, 1, x.shape().erase(a));
}

Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end) {
  check_defined("slice", x, "x");
  int a = normalize_axis(axis, x.rank(), "slice");
  if (start < 0 || end > x.size(a) || start > end)
    throw std::invalid_argument(
        fmt::format("slice: range [{}, {}) is invalid for axis {} of shape {}", start, end, a, x.shape()));
  Shape s = x.shape();
  s[a] = end - start;
  return slice_like(Op::Slice, x, a, start, end - start, s);
}

namespace {
// block_copy for an x that may be a row view: each of its rows of C elements is one contiguous run
// in `big` too (C divides the inner extent, or is the whole axis when that is the last one).
template <class T>
void block_copy_rows(const Tensor& x, int a, T* big, AxisView v, int64_t start, bool to_big, bool acc) {
  const int64_t len = x.shape()[a];
  if (x.contiguous()) return block_copy(static_cast<T*>(x.raw_rows()), big, v, start, len, to_big, acc);
  const int64_t C = x.size(-1), rows = x.numel() / C, ld = x.row_stride();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t f = r * C, o = f / (len * v.inner), i = f / v.inner % len, j = f % v.inner;
    T* b = big + (o * v.n + start + i) * v.inner + j;
    T* xr = static_cast<T*>(x.raw_rows()) + r * ld;
    T* dst = to_big ? b : xr;
    const T* src = to_big ? xr : b;
    if (acc)
      k::axpy(dst, T(1), src, C);
    else
      std::memcpy(dst, src, size_t(C) * sizeof(T));
  }
}

// The result of concat without a copy, when the inputs are row views of one buffer that already
// hold them where the result would: a sequence layer's step states in its output. Else undefined.
Tensor concat_view(std::span<const Tensor> xs, int a, const Shape& s) {
  if (s.rank() != 2 || xs.size() < 2) return {};
  const TensorImpl& first = xs[0].impl();
  int64_t start = 0;
  for (const Tensor& x : xs) {
    const TensorImpl& xi = x.impl();
    const bool rows_fit = a == 1 ? x.row_stride() == s[1] || x.size(0) == 1 : x.contiguous();
    if (xi.storage != first.storage || !rows_fit || xi.offset != first.offset + (a == 1 ? start : start * s[1]))
      return {};
    start += x.shape()[a];
  }
  return detail::row_view(xs[0], 0, s, s[1]);
}
}  // namespace

Tensor concat(std::span<const Tensor> xs, int axis) {
  if (xs.empty()) throw std::invalid_argument("concat: no tensors given");
  for (size_t i = 0; i < xs.size(); ++i) check_defined("concat", xs[i], "an input");
  const Tensor& first = xs[0];
  int a = normalize_axis(axis, first.rank(), "concat");
  Shape s = first.shape();
  s[a] = 0;
  bool grad = false;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    check_same_dtype("concat", first, x);
    bool ok = x.rank() == first.rank();
    for (int d = 0; ok && d < x.rank(); ++d) ok = d == a || x.shape()[d] == first.shape()[d];
    if (!ok)
      throw std::invalid_argument(fmt::format("concat: input {} has shape {} but input 0 has shape {}; all axes but {} must match",
                                              i, x.shape(), first.shape(), a));
    s[a] += x.shape()[a];
    grad = recording("concat", {&x}) || grad;
  }
  Tensor y = concat_view(xs, a, s);
  if (!y.defined()) {
    y = Tensor::empty(s, first.dtype());
    by_dtype(first.dtype(), [&](auto tag) {
      using T = decltype(tag);
      int64_t start = 0;
      for (const Tensor& x : xs) {
        block_copy_rows(x, a, ptr<T>(y), axis_view(s, a), start, true, false);
        start += x.shape()[a];
      }
    });
  }
  if (grad) record({.op = Op::Concat, .list = {xs.begin(), xs.end()}, .out = y, .iattr = {a}});
  return y;
}

namespace {
void Concat_bwd(const Node& n) {
  const int a = int(n.iattr[0]);
  const Tensor g = n.out.grad().contiguous() ? n.out.grad() : n.out.grad().clone();
  const AxisView v = axis_view(n.out.shape(), a);
  int64_t start = 0;
  for (const Tensor& x : n.list) {
    // A non-leaf's first gradient is a view of its block of g, which the tape drops next: no copy.
    // A contiguous block always; a strided one (rows of the last axis) only for an x that is a row
    // view itself, whose producer (a cell) reads such gradients. Leaves keep their own buffer.
    const bool view = !x.is_leaf() && !x.impl().grad && (v.outer == 1 || (v.inner == 1 && !x.contiguous()));
    if (x.requires_grad() && view)
      x.impl().grad = detail::row_view(g, v.outer == 1 ? start * v.inner : start, x.shape(),
                                       v.outer == 1 ? x.size(-1) : v.n).impl_ptr();
    else if (x.requires_grad())
      by_dtype(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        auto [dx, fresh] = grad_slot(x);
        block_copy_rows(dx, a, ptr<T>(g), v, start, false, !fresh);
      });
    start += x.shape()[a];
  }
}
}  // namespace

Tensor unsqueeze(const Tensor& x, int axis) {
  check_defined("unsqueeze", x, "x");
  return reshape(x, x.shape().insert(normalize_axis(axis, x.rank() + 1, "unsqueeze"), 1));
}

Tensor squeeze(const Tensor& x, int axis) {
  check_defined("squeeze", x, "x");
  int a = normalize_axis(axis, x.rank(), "squeeze");
  if (x.size(a) != 1)
    throw std::invalid_argument(fmt::format("squeeze: axis {} of shape {} has extent {}, not 1", a, x.shape(), x.size(a)));
  return reshape(x, x.shape().erase(a));
}

Tensor stack(std::span<const Tensor> xs, int axis) {
  if (xs.empty()) throw std::invalid_argument("stack: no tensors given");
  int a = normalize_axis(axis, xs[0].rank() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    if (xs[i].defined() && xs[i].shape() != xs[0].shape())
      throw std::invalid_argument(fmt::format("stack: input {} has shape {} but input 0 has shape {}", i, xs[i].shape(), xs[0].shape()));
    parts.push_back(unsqueeze(xs[i], a));
  }
  return concat(parts, a);
}

// ================================================================ reductions
Tensor sum(const Tensor& x) {
  check_defined("sum", x, "x");
  Tensor y = Tensor::empty(Shape{}, x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    *ptr<T>(y) = k::sum(ptr<T>(x), x.numel());
  });
  if (recording("sum", {&x})) record({.op = Op::SumAll, .in = {x}, .out = y});
  return y;
}

namespace {
void SumAll_bwd(const Node& n) {
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T zero = 0;
    k::binary_acc(k::Binary::add, T(1), ptr<T>(grad_of(n.in[0])), ptr<T>(n.out.grad()), 0, &zero, 0, n.in[0].numel());
  });
}
}  // namespace

Tensor sum(const Tensor& x, int axis, bool keepdim) {
  check_defined("sum", x, "x");
  int a = normalize_axis(axis, x.rank(), "sum");
  Shape s = x.shape();
  s[a] = 1;
  Tensor y = Tensor::empty(keepdim ? s : x.shape().erase(a), x.dtype());
  AxisView v = axis_view(x.shape(), a);
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = ptr<T>(x);
    T* py = ptr<T>(y);
    for (int64_t o = 0; o < v.outer; ++o) {
      if (v.inner == 1) {
        py[o] = k::sum(px + o * v.n, v.n);
        continue;
      }
      T* row = py + o * v.inner;
      std::fill(row, row + v.inner, T(0));
      for (int64_t i = 0; i < v.n; ++i) k::axpy(row, T(1), px + (o * v.n + i) * v.inner, v.inner);
    }
  });
  if (recording("sum", {&x})) record({.op = Op::SumAxis, .in = {x}, .out = y, .iattr = {a}});
  return y;
}

namespace {
void SumAxis_bwd(const Node& n) {
  AxisView v = axis_view(n.in[0].shape(), int(n.iattr[0]));
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* dx = ptr<T>(grad_of(n.in[0]));
    const T* g = ptr<T>(n.out.grad());
    const T zero = 0;
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.n; ++i) {
        T* d = dx + (o * v.n + i) * v.inner;
        if (v.inner == 1)
          *d += g[o];
        else
          k::binary_acc(k::Binary::add, T(1), d, g + o * v.inner, 1, &zero, 0, v.inner);
      }
  });
}
}  // namespace

Tensor mean(const Tensor& x) {
  check_defined("mean", x, "x");
  if (x.numel() == 0) throw std::invalid_argument(fmt::format("mean: tensor of shape {} is empty", x.shape()));
  return mul(sum(x), 1.0 / double(x.numel()));
}

Tensor mean(const Tensor& x, int axis, bool keepdim) {
  check_defined("mean", x, "x");
  int64_t n = x.size(axis);
  if (n == 0) throw std::invalid_argument(fmt::format("mean: axis {} of shape {} is empty", axis, x.shape()));
  return mul(sum(x, axis, keepdim), 1.0 / double(n));
}

namespace {
// Softmax or log-softmax of each run along `axis` (stride `inner`), max-shifted for stability.
template <class T>
void softmax_rows(T* y, const T* x, AxisView v, bool log_space) {
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t i = 0; i < v.inner; ++i) {
      const T* xr = x + o * v.n * v.inner + i;
      T* yr = y + o * v.n * v.inner + i;
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < v.n; ++j) m = std::max(m, xr[j * v.inner]);
      T s = 0;
      for (int64_t j = 0; j < v.n; ++j) s += std::exp(xr[j * v.inner] - m);
      T ls = std::log(s);
      for (int64_t j = 0; j < v.n; ++j) {
        T z = xr[j * v.inner] - m;
        yr[j * v.inner] = log_space ? z - ls : std::exp(z) / s;
      }
    }
}

Tensor softmax_op(Op op, const Tensor& x, int axis) {
  check_defined(op_name(op), x, "x");
  int a = normalize_axis(axis, x.rank(), op_name(op));
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    softmax_rows(ptr<T>(y), ptr<T>(x), axis_view(x.shape(), a), op == Op::LogSoftmax);
  });
  if (recording(op_name(op), {&x})) record({.op = op, .in = {x}, .out = y, .iattr = {a}});
  return y;
}

// softmax: dx += y * (g - sum(g*y)); log_softmax: dx += g - exp(y) * sum(g).
void softmax_grad(const Node& n, bool log_space) {
  AxisView v = axis_view(n.out.shape(), int(n.iattr[0]));
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* dx = ptr<T>(grad_of(n.in[0]));
    const T* g = ptr<T>(n.out.grad());
    const T* y = ptr<T>(n.out);
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.inner; ++i) {
        int64_t base = o * v.n * v.inner + i;
        T dot = 0;
        for (int64_t j = 0; j < v.n; ++j) {
          int64_t e = base + j * v.inner;
          dot += log_space ? g[e] : g[e] * y[e];
        }
        for (int64_t j = 0; j < v.n; ++j) {
          int64_t e = base + j * v.inner;
          dx[e] += log_space ? g[e] - std::exp(y[e]) * dot : y[e] * (g[e] - dot);
        }
      }
  });
}
void Softmax_bwd(const Node& n) { softmax_grad(n, false); }
void LogSoftmax_bwd(const Node& n) { softmax_grad(n, true); }
}  // namespace

Tensor softmax(const Tensor& x, int axis) { return softmax_op(Op::Softmax, x, axis); }
Tensor log_softmax(const Tensor& x, int axis) { return softmax_op(Op::LogSoftmax, x, axis); }

// ================================================================ losses
Tensor mse_loss(const Tensor& input, const Tensor& target) {
  check_defined("mse_loss", input, "input");
  check_defined("mse_loss", target, "target");
  if (input.shape() != target.shape())
    throw std::invalid_argument(fmt::format("mse_loss: input is {} but target is {}", input.shape(), target.shape()));
  return mean(pow(sub(input, target), 2.0));
}

Tensor bce_with_logits_elementwise(const Tensor& logits, const Tensor& target) {
  check_defined("bce_with_logits", logits, "logits");
  check_defined("bce_with_logits", target, "target");
  check_same_dtype("bce_with_logits", logits, target);
  if (logits.shape() != target.shape())
    throw std::invalid_argument(
        fmt::format("bce_with_logits: logits are {} but targets are {}", logits.shape(), target.shape()));
  Tensor y = Tensor::empty(logits.shape(), logits.dtype());
  by_dtype(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *x = ptr<T>(logits), *t = ptr<T>(target);
    T* out = ptr<T>(y);
    for (int64_t i = 0, n = y.numel(); i < n; ++i)
      out[i] = std::max(x[i], T(0)) - x[i] * t[i] + std::log1p(std::exp(-std::abs(x[i])));
  });
  if (recording("bce_with_logits", {&logits, &target}))
    record({.op = Op::BceWithLogits, .in = {logits, target}, .out = y});
  return y;
}

namespace {
void BceWithLogits_bwd(const Node& n) {
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *x = ptr<T>(n.in[0]), *t = ptr<T>(n.in[1]), *g = ptr<T>(n.out.grad());
    int64_t N = n.out.numel();
    if (n.needs_grad[0]) {
      T* dx = ptr<T>(grad_of(n.in[0]));
      for (int64_t i = 0; i < N; ++i) dx[i] += g[i] * (T(1) / (T(1) + std::exp(-x[i])) - t[i]);
    }
    if (n.needs_grad[1]) {
      T* dt = ptr<T>(grad_of(n.in[1]));
      for (int64_t i = 0; i < N; ++i) dt[i] -= g[i] * x[i];
    }
  });
}
}  // namespace

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target) {
  return mean(bce_with_logits_elementwise(logits, target));
}

namespace {
// Indices are stored as float64 values in Node::saved, exact up to 2^53.
Tensor index_tensor(const char* op, std::span<const int64_t> idx, int64_t limit) {
  Tensor t = Tensor::empty(Shape{int64_t(idx.size())}, DType::f64);
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] < 0 || idx[i] >= limit)
      throw std::invalid_argument(fmt::format("{}: index {} at position {} is out of range [0, {})", op, idx[i], i, limit));
    t.data<double>()[i] = double(idx[i]);
  }
  return t;
}
}  // namespace

Tensor nll_loss(const Tensor& logp, std::span<const int64_t> target) {
  check_defined("nll_loss", logp, "input");
  if (logp.rank() != 2 || int64_t(target.size()) != logp.size(0) || logp.size(0) == 0)
    throw std::invalid_argument(fmt::format("nll_loss: input is {} with {} targets; expected (N, C) with N >= 1 targets",
                                            logp.shape(), target.size()));
  int64_t N = logp.size(0), C = logp.size(1);
  Tensor saved = index_tensor("nll_loss", target, C);
  Tensor y = Tensor::empty(Shape{}, logp.dtype());
  by_dtype(logp.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T s = 0;
    for (int64_t i = 0; i < N; ++i) s += ptr<T>(logp)[i * C + target[i]];
    *ptr<T>(y) = -s / T(N);
  });
  if (recording("nll_loss", {&logp})) record({.op = Op::NllLoss, .in = {logp}, .out = y, .saved = saved});
  return y;
}

namespace {
void NllLoss_bwd(const Node& n) {
  int64_t N = n.in[0].size(0), C = n.in[0].size(1);
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* d = ptr<T>(grad_of(n.in[0]));
    T g = *ptr<T>(n.out.grad()) / T(N);
    for (int64_t i = 0; i < N; ++i) d[i * C + int64_t(n.saved.data<double>()[i])] -= g;
  });
}
}  // namespace

Tensor cross_entropy(const Tensor& logits, std::span<const int64_t> target) {
  check_defined("cross_entropy", logits, "logits");
  if (logits.rank() != 2)
    throw std::invalid_argument(fmt::format("cross_entropy: logits are {}; expected (N, C)", logits.shape()));
  return nll_loss(log_softmax(logits, 1), target);
}

Tensor embedding(const Tensor& weight, std::span<const int64_t> indices, const Shape& index_shape) {
  check_defined("embedding", weight, "weight");
  if (weight.rank() != 2)
    throw std::invalid_argument(fmt::format("embedding: weight is {}; expected (V, D)", weight.shape()));
  if (index_shape.numel() != int64_t(indices.size()))
    throw std::invalid_argument(fmt::format("embedding: {} indices do not fill index shape {}", indices.size(), index_shape));
  int64_t D = weight.size(1);
  Tensor saved = index_tensor("embedding", indices, weight.size(0));
  Shape s = index_shape;
  s.push_back(D);
  Tensor y = Tensor::empty(s, weight.dtype());
  by_dtype(weight.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < indices.size(); ++i)
      std::memcpy(ptr<T>(y) + i * D, ptr<T>(weight) + indices[i] * D, size_t(D) * sizeof(T));
  });
  if (recording("embedding", {&weight})) record({.op = Op::Embedding, .in = {weight}, .out = y, .saved = saved});
  return y;
}

namespace {
void Embedding_bwd(const Node& n) {
  int64_t D = n.in[0].size(1);
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* dw = ptr<T>(grad_of(n.in[0]));
    const T* g = ptr<T>(n.out.grad());
    for (int64_t i = 0, m = n.saved.numel(); i < m; ++i)
      k::axpy(dw + int64_t(n.saved.data<double>()[i]) * D, T(1), g + i * D, D);
  });
}
}  // namespace

// ================================================================ recurrent cells
struct PackedWeight::Packs {
  Tensor fwd, bwd;  // packed op(B) = W^T (h W^T) and W (dg W); undefined when the GEMM reads W in place
  std::once_flag bwd_once;
  // XpUse::consume: the xp this sequence's cells overwrite, its steps in recording order (and a
  // flag per step), and whether a backward pass has begun overwriting them with gradients.
  const TensorImpl* xp = nullptr;
  std::vector<int64_t> steps;
  std::vector<char> consumed;
  bool backward_started = false;

  // The packed forms of w, the PackedWeight's own tensor.
  template <class T>
  k::PackedB<T> forward(const Tensor& w) const {
    return {.trans = true, .K = w.size(1), .N = w.size(0), .src = ptr<T>(w), .ldb = w.size(1),
            .data = fwd.defined() ? ptr<T>(fwd) : nullptr};
  }
  template <class T>
  k::PackedB<T> backward(const Tensor& w) {
    k::PackedB<T> b{.trans = false, .K = w.size(0), .N = w.size(1), .src = ptr<T>(w), .ldb = w.size(1)};
    std::call_once(bwd_once, [&] {
      if (int64_t n = k::gemm_packed_size<T>(b.K, b.N)) {
        bwd = Tensor::empty({n}, w.dtype());
        b.data = ptr<T>(bwd);
        k::gemm_pack_b(b);
      }
    });
    b.data = bwd.defined() ? ptr<T>(bwd) : nullptr;
    return b;
  }
};

PackedWeight::PackedWeight(const Tensor& w) : w_(w), packs_(std::make_shared<Packs>()) {
  check_defined("PackedWeight", w, "weight");
  if (w.rank() != 2) throw std::invalid_argument(fmt::format("PackedWeight: weight is {}; expected (G*H, H)", w.shape()));
  by_dtype(w.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (int64_t n = k::gemm_packed_size<T>(w.size(1), w.size(0))) {
      packs_->fwd = Tensor::empty({n}, w.dtype());
      k::gemm_pack_b(packs_->forward<T>(w));
    }
  });
}

namespace {

// Where the rows of step t start in xp, and the checks every cell shares. G gates of H units.
struct CellRows {
  int64_t B, H, T, base, stride;  // xp row b of step t starts at base + b * stride
  int64_t row(int64_t b) const { return base + b * stride; }
};

// Offset of step t's first row in xp.
int64_t step_base(const Tensor& xp, int time_axis, int64_t t) {
  const int64_t GH = xp.size(-1);
  if (xp.rank() == 2) return 0;
  return time_axis == 1 ? t * GH : t * xp.size(1) * GH;
}

CellRows cell_rows(const char* op, const Tensor& xp, int time_axis, int64_t t, const Tensor& h, int64_t G,
                   const Tensor& w, const Tensor& c) {
  check_defined(op, xp, "xp");
  check_defined(op, h, "h");
  check_same_dtype(op, xp, h);
  check_same_dtype(op, xp, w);
  if (h.rank() != 2) throw std::invalid_argument(fmt::format("{}: h is {}; expected (B, H)", op, h.shape()));
  int64_t B = h.size(0), H = h.size(1), GH = G * H;
  if (w.shape() != Shape{GH, H})
    throw std::invalid_argument(
        fmt::format("{}: w_hh is {} but h is {}; expected ({}, {}) = ({}*H, H)", op, w.shape(), h.shape(), GH, H, G));
  bool ok = xp.size(-1) == GH && (xp.rank() == 2 || xp.rank() == 3);
  if (ok && xp.rank() == 2) ok = xp.size(0) == B;
  if (ok && xp.rank() == 3) ok = (time_axis == 0 || time_axis == 1) && xp.size(1 - time_axis) == B;
  if (!ok)
    throw std::invalid_argument(fmt::format(
        "{}: xp is {} but h is {}; expected xp (B, {}*H) or (B, T, {}*H) / (T, B, {}*H) with time_axis 1 / 0", op,
        xp.shape(), h.shape(), G, G, G));
  int64_t T = xp.rank() == 3 ? xp.size(time_axis) : 1;
  if (t < 0 || t >= T) throw std::invalid_argument(fmt::format("{}: step {} is out of range for xp {}", op, t, xp.shape()));
  if (c.defined()) {
    check_same_dtype(op, xp, c);
    if (c.shape() != h.shape())
      throw std::invalid_argument(fmt::format("{}: c is {} but h is {}; expected the same", op, c.shape(), h.shape()));
  }
  const int64_t stride = xp.rank() == 3 && time_axis == 1 ? T * GH : GH;
  return {B, H, T, step_base(xp, time_axis, t), stride};
}

// Rows are independent: threads split them when the step is large.
bool parallel_rows(const CellRows& r, int64_t G) { return r.B > 1 && r.B * r.H * G >= (1 << 16); }

template <class T>
T* grad_ptr(const Node& n, int i) {
  return n.needs_grad[i] ? ptr<T>(grad_of(n.in[i])) : nullptr;
}

// The rows of a (B, H) state, which may be a row view into a sequence layer's output.
template <class T>
struct Rows {
  T* p = nullptr;
  int64_t ld = 0;
  T* row(int64_t r) const { return p ? p + r * ld : nullptr; }
};
template <class T>
Rows<T> rows_of(const Tensor& t) {
  if (!t.defined()) return {};
  return {static_cast<T*>(t.raw_rows()), t.row_stride()};
}

// The state h' is written to: `out` when given (checked against (B, H)), else a new tensor.
Tensor state_out(const char* op, const Tensor& out, const Tensor& like) {
  if (!out.defined()) return Tensor::empty(like.shape(), like.dtype());
  if (out.shape() != like.shape() || out.dtype() != like.dtype() || out.requires_grad())
    throw std::invalid_argument(fmt::format("{}: out is {} {}{}; expected {} {} without grad", op, out.shape(),
                                            out.dtype(), out.requires_grad() ? " requiring grad" : "", like.shape(),
                                            like.dtype()));
  if (out.raw_rows() == like.raw_rows())  // h is read while h' is written
    throw std::invalid_argument(fmt::format("{}: out is the same memory as h; pass another tensor", op));
  return out;
}

PackedWeight::Packs& packs_of(const Node& n) { return *static_cast<PackedWeight::Packs*>(n.shared.get()); }

// XpUse::consume, forward: registers step t of xp with the sequence's PackedWeight.
void consume_step(const char* op, PackedWeight::Packs& p, const Tensor& xp, const CellRows& r, int64_t t) {
  if (p.xp && p.xp != &xp.impl())
    throw std::invalid_argument(fmt::format("{}: this PackedWeight already consumes another xp; use one per xp", op));
  if (!p.xp) {  // one allocation each per sequence, none per step
    p.consumed.assign(size_t(r.T), 0);
    p.steps.reserve(size_t(r.T));
  }
  if (p.consumed[size_t(t)])
    throw std::invalid_argument(fmt::format("{}: step {} of xp {} was already consumed", op, t, xp.shape()));
  p.xp = &xp.impl();
  p.consumed[size_t(t)] = 1;
  p.steps.push_back(t);
}

// XpUse::consume, backward: whether this pass may overwrite the activations with gradients (not
// when the graph is retained). The first such cell of a sequence prepares xp's gradient: the steps
// recorded up to its own will all be visited, each feeding the next through h, and each writes
// its slice; every other slice gets zeros. xp's gradient is then xp itself.
template <class T>
bool backward_in_place(const Node& n, const CellRows& r) {
  if (n.iattr[2] >> 1 == 0 || Tape::current().retains_graph()) return false;
  PackedWeight::Packs& p = packs_of(n);
  const bool first = !p.backward_started;
  p.backward_started = true;
  if (!first || !n.needs_grad[0]) return true;
  const Tensor& xp = n.in[0];
  std::vector<char> visited(size_t(r.T), 0);
  for (int64_t s : p.steps) {
    visited[size_t(s)] = 1;
    if (s == n.iattr[1]) break;
  }
  for (int64_t s = 0; s < r.T; ++s) {
    if (visited[size_t(s)]) continue;
    T* slice = ptr<T>(xp) + step_base(xp, int(n.iattr[0]), s);
    for (int64_t b = 0; b < r.B; ++b) std::fill_n(slice + b * r.stride, xp.size(-1), T(0));
  }
  xp.impl().grad = xp.detach().impl_ptr();
  return true;
}

// The hidden product's backward, shared by the cells: given dg = d(h W^T) (B, G*H, row stride
// ldg), dh += dg W (packed once per sequence) and dW += dg^T h.
template <class T>
void hidden_product_bwd(const Node& n, const T* dg, int64_t ldg, int h_in, int w_in) {
  const Tensor& h = n.in[h_in];
  const int64_t B = h.size(0), H = h.size(1), GH = n.in[w_in].size(0);
  if (n.needs_grad[h_in]) {
    auto [dh, fresh] = grad_slot(h);
    const Rows<T> d = rows_of<T>(dh);
    k::gemm_packed<T>(B, dg, ldg, packs_of(n).backward<T>(n.in[w_in]), T(!fresh), d.p, d.ld);
  }
  if (n.needs_grad[w_in]) {
    auto [dw, fresh] = grad_slot(n.in[w_in]);
    const Rows<T> hr = rows_of<T>(h);
    k::gemm<T>(true, false, GH, H, B, dg, ldg, hr.p, hr.ld, T(!fresh), ptr<T>(dw), H);
  }
}

}  // namespace

Tensor rnn_cell(const Tensor& xp, int time_axis, int64_t t, const Tensor& h, const PackedWeight& w_hh, bool relu,
                XpUse use, const Tensor& out) {
  const Tensor& w = w_hh.tensor();
  CellRows r = cell_rows("rnn_cell", xp, time_axis, t, h, 1, w, {});
  if (use == XpUse::consume) consume_step("rnn_cell", *w_hh.packs(), xp, r, t);  // read as is; backward writes it
  Tensor h_next = state_out("rnn_cell", out, h);
  by_dtype(xp.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Rows<T> hr = rows_of<T>(h), hn = rows_of<T>(h_next);
    k::gemm_packed<T>(r.B, hr.p, hr.ld, w_hh.packs()->forward<T>(w), T(0), hn.p, hn.ld);
    k::parallel_for(r.B, parallel_rows(r, 1),
                    [&](int64_t b) { k::rnn_cell_fwd(hn.row(b), ptr<T>(xp) + r.row(b), relu, r.H); });
  });
  if (recording("rnn_cell", {&xp, &h, &w}))
    record({.op = Op::RnnCell, .in = {xp, h, w}, .out = h_next, .shared = w_hh.packs(),
            .iattr = {time_axis, t, relu | int64_t(use == XpUse::consume) << 1}});
  return h_next;
}

std::pair<Tensor, Tensor> lstm_cell(const Tensor& xp, int time_axis, int64_t t, const Tensor& h, const Tensor& c,
                                    const PackedWeight& w_hh, XpUse use, const Tensor& out) {
  check_defined("lstm_cell", c, "c");
  const Tensor& w = w_hh.tensor();
  CellRows r = cell_rows("lstm_cell", xp, time_axis, t, h, 4, w, c);
  const bool consume = use == XpUse::consume;
  if (consume) consume_step("lstm_cell", *w_hh.packs(), xp, r, t);
  Tensor h_next = state_out("lstm_cell", out, h), c_next = Tensor::empty({r.B, r.H}, xp.dtype());
  Tensor act = consume ? Tensor() : Tensor::empty({r.B, 4 * r.H}, xp.dtype());  // consumed: xp's slice
  by_dtype(xp.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Rows<T> hr = rows_of<T>(h), hn = rows_of<T>(h_next), cr = rows_of<T>(c);
    T* gates = consume ? ptr<T>(xp) + r.base : ptr<T>(act);
    const int64_t ld = consume ? r.stride : 4 * r.H;
    k::gemm_packed<T>(r.B, hr.p, hr.ld, w_hh.packs()->forward<T>(w), T(consume), gates, ld);
    k::parallel_for(r.B, parallel_rows(r, 4), [&](int64_t b) {
      k::lstm_cell_fwd(hn.row(b), ptr<T>(c_next) + b * r.H, gates + b * ld, consume ? nullptr : ptr<T>(xp) + r.row(b),
                       cr.row(b), r.H);
    });
  });
  if (recording("lstm_cell", {&xp, &h, &c, &w}))
    record({.op = Op::LstmCell, .in = {xp, h, c, w}, .out = h_next, .out2 = c_next, .saved = act,
            .shared = w_hh.packs(), .iattr = {time_axis, t, int64_t(consume) << 1}});
  return {h_next, c_next};
}

Tensor gru_cell(const Tensor& xp, int time_axis, int64_t t, const Tensor& h, const PackedWeight& w_hh,
                const Tensor& b_hh, XpUse use, const Tensor& out) {
  const Tensor& w = w_hh.tensor();
  CellRows r = cell_rows("gru_cell", xp, time_axis, t, h, 3, w, {});
  if (b_hh.defined()) {
    check_same_dtype("gru_cell", xp, b_hh);
    if (b_hh.shape() != Shape{3 * r.H})
      throw std::invalid_argument(fmt::format("gru_cell: b_hh is {}; expected ({},)", b_hh.shape(), 3 * r.H));
  }
  const bool consume = use == XpUse::consume;
  if (consume) consume_step("gru_cell", *w_hh.packs(), xp, r, t);
  // Saved: r, z, n (3H) in xp's slice when consumed, then hp_n (H); otherwise all four (4H) here.
  Tensor h_next = state_out("gru_cell", out, h);
  Tensor saved = Tensor::empty({r.B, (consume ? 1 : 4) * r.H}, xp.dtype());
  Tensor hp = Tensor::empty({r.B, 3 * r.H}, xp.dtype());  // scratch
  by_dtype(xp.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Rows<T> hr = rows_of<T>(h), hn_rows = rows_of<T>(h_next);
    T* php = ptr<T>(hp);
    k::gemm_packed<T>(r.B, hr.p, hr.ld, w_hh.packs()->forward<T>(w), T(0), php, 3 * r.H, ptr_or_null<T>(b_hh));
    k::parallel_for(r.B, parallel_rows(r, 3), [&](int64_t b) {
      T* act = consume ? ptr<T>(xp) + r.row(b) : ptr<T>(saved) + b * 4 * r.H;
      T* hn = consume ? ptr<T>(saved) + b * r.H : act + 3 * r.H;
      k::gru_cell_fwd(hn_rows.row(b), act, hn, ptr<T>(xp) + r.row(b), php + b * 3 * r.H, hr.row(b), r.H);
    });
  });
  if (recording("gru_cell", {&xp, &h, &w, &b_hh}))
    record({.op = Op::GruCell, .in = {xp, h, w, b_hh}, .out = h_next, .saved = saved, .shared = w_hh.packs(),
            .iattr = {time_axis, t, int64_t(consume) << 1}});
  return h_next;
}

namespace {
void RnnCell_bwd(const Node& n) {
  CellRows r = cell_rows("rnn_cell", n.in[0], int(n.iattr[0]), n.iattr[1], n.in[1], 1, n.in[2], {});
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // In place, the pre-activation gradient overwrites xp's slice and is its gradient.
    const bool in_place = backward_in_place<T>(n, r);
    Tensor scratch = in_place ? Tensor() : Tensor::empty({r.B, r.H}, n.out.dtype());
    T* dpre = in_place ? ptr<T>(n.in[0]) + r.base : ptr<T>(scratch);
    const int64_t ld = in_place ? r.stride : r.H;
    T* dxp = in_place ? nullptr : grad_ptr<T>(n, 0);
    const Rows<T> h = rows_of<T>(n.out), dh = rows_of<T>(n.out.grad());
    k::parallel_for(r.B, parallel_rows(r, 1), [&](int64_t b) {
      k::rnn_cell_bwd(dxp ? dxp + r.row(b) : dxp, dpre + b * ld, h.row(b), dh.row(b), (n.iattr[2] & 1) != 0, r.H);
    });
    hidden_product_bwd<T>(n, dpre, ld, 1, 2);
  });
}

void LstmCell_bwd(const Node& n) {
  CellRows r = cell_rows("lstm_cell", n.in[0], int(n.iattr[0]), n.iattr[1], n.in[1], 4, n.in[3], {});
  const bool consumed = n.iattr[2] >> 1 != 0;
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // In place, the gate gradients overwrite the activations in xp's slice and are its gradient.
    const bool in_place = backward_in_place<T>(n, r);
    const T* act = consumed ? ptr<T>(n.in[0]) + r.base : ptr<T>(n.saved);
    const int64_t act_ld = consumed ? r.stride : 4 * r.H;
    Tensor scratch = in_place ? Tensor() : Tensor::empty({r.B, 4 * r.H}, n.out.dtype());
    T* dg = in_place ? ptr<T>(n.in[0]) + r.base : ptr<T>(scratch);
    const int64_t dg_ld = in_place ? r.stride : 4 * r.H;
    T *dxp = in_place ? nullptr : grad_ptr<T>(n, 0), *dc = grad_ptr<T>(n, 2);
    const Rows<T> dh_next = rows_of<T>(n.out.grad()), dc_next = rows_of<T>(n.out2.grad());
    k::parallel_for(r.B, parallel_rows(r, 4), [&](int64_t b) {
      int64_t o = b * r.H;
      k::lstm_cell_bwd(dxp ? dxp + r.row(b) : dxp, dg + b * dg_ld, dc ? dc + o : dc, act + b * act_ld,
                       ptr<T>(n.in[2]) + o, ptr<T>(n.out2) + o, dh_next.row(b), dc_next.row(b), r.H);
    });
    hidden_product_bwd<T>(n, dg, dg_ld, 1, 3);
  });
}

void GruCell_bwd(const Node& n) {
  CellRows r = cell_rows("gru_cell", n.in[0], int(n.iattr[0]), n.iattr[1], n.in[1], 3, n.in[2], {});
  const bool consumed = n.iattr[2] >> 1 != 0;
  Tensor dhp = Tensor::empty({r.B, 3 * r.H}, n.out.dtype());
  by_dtype(n.out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // In place, the input gate gradients overwrite r, z, n in xp's slice and are its gradient.
    const bool in_place = backward_in_place<T>(n, r);
    T* dxp_all = in_place ? ptr<T>(n.in[0]) : grad_ptr<T>(n, 0);
    const Rows<T> dh = n.needs_grad[1] ? rows_of<T>(grad_of(n.in[1])) : Rows<T>{}, h_prev = rows_of<T>(n.in[1]),
                  g = rows_of<T>(n.out.grad());
    k::parallel_for(r.B, parallel_rows(r, 3), [&](int64_t b) {
      int64_t o = b * r.H;
      const T* act = consumed ? ptr<T>(n.in[0]) + r.row(b) : ptr<T>(n.saved) + 4 * o;
      const T* hn = consumed ? ptr<T>(n.saved) + o : act + 3 * r.H;
      T* dxp = dxp_all ? dxp_all + r.row(b) : nullptr;
      k::gru_cell_bwd(dxp, in_place, ptr<T>(dhp) + 3 * o, dh.row(b), act, hn, h_prev.row(b), g.row(b), r.H);
    });
    hidden_product_bwd<T>(n, ptr<T>(dhp), 3 * r.H, 1, 2);
    if (n.needs_grad[3]) column_sum_acc(ptr<T>(grad_of(n.in[3])), ptr<T>(dhp), r.B, 3 * r.H);
  });
}
}  // namespace

namespace detail {
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
