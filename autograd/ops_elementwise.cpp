// Element-wise ops: binary (broadcasting), with a scalar operand, unary; builders next to their backward.
// Dimension legend and conventions: autograd/ops_internal.h.
#include "autograd/ops.h"

#include <cmath>

#include "autograd/ops_internal.h"

namespace seqgrad {
using namespace detail;

namespace detail {

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
  if (recording(name, {&a, &b}, y)) record({.op = op, .in = {a, b}, .out = y});
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

}  // namespace detail

Tensor add(const Tensor& a, const Tensor& b) { return binary_op(Op::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op(Op::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(Op::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op(Op::Div, a, b); }

// ================================================================ scalar operand
namespace detail {

Tensor affine_op(Op op, const Tensor& x, double scale, double shift, double attr) {
  check_defined(op_name(op), x, "x");
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    k::affine(ptr<T>(y), ptr<T>(x), T(scale), T(shift), x.numel());
  });
  if (recording(op_name(op), {&x}, y)) record({.op = op, .in = {x}, .out = y, .attr = attr});
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

}  // namespace detail

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
  if (recording("pow", {&x}, y)) record({.op = Op::PowScalar, .in = {x}, .out = y, .attr = p});
  return y;
}

// ================================================================ unary
namespace detail {

Tensor unary_op(Op op, k::Unary kind, const Tensor& x) {
  check_defined(op_name(op), x, "x");
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  by_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    k::unary(kind, ptr<T>(y), ptr<T>(x), x.numel());
  });
  if (recording(op_name(op), {&x}, y)) record({.op = op, .in = {x}, .out = y});
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

}  // namespace detail

Tensor exp(const Tensor& x) { return unary_op(Op::Exp, k::Unary::exp, x); }
Tensor log(const Tensor& x) { return unary_op(Op::Log, k::Unary::log, x); }
Tensor tanh(const Tensor& x) { return unary_op(Op::Tanh, k::Unary::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary_op(Op::Sigmoid, k::Unary::sigmoid, x); }
Tensor relu(const Tensor& x) { return unary_op(Op::Relu, k::Unary::relu, x); }

}  // namespace seqgrad
