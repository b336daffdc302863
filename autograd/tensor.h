// Tensor: a shared handle to contiguous row-major float32/float64 storage, plus the autograd
// bookkeeping (requires_grad, accumulated grad, the tape node that produced it).
//
// Copying a Tensor copies a pointer: both copies see the same values and the same grad, like
// PyTorch. reshape() is a view (shared storage); every other op writes a new tensor. Tensors are
// contiguous, so kernels see plain spans; the one exception is internal: the sequence layers keep
// each step's hidden state as a strided view of rows into the layer's output (detail::row_view),
// which only the recurrent cells, concat/stack and reshape accept; data() and raw() refuse one.
//
//   Generator gen(42);
//   Tensor w = uniform({8, 5}, -0.3, 0.3, gen).requires_grad_();
//   Tensor loss = (matmul(x, w.t()).tanh() - y).pow(2).mean();
//   loss.backward();  // w.grad() now holds d loss / d w
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <vector>

#include "autograd/shape.h"

namespace seqgrad {

// Owned, 64-byte aligned, uninitialised bytes. Freed buffers are kept per thread for reuse by
// the next buffer of the same size (up to 1 GiB in all); release_cached_memory() returns them.
struct Storage {
  explicit Storage(size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data;
  size_t bytes;
};

void release_cached_memory();

class Tensor;

struct TensorImpl {
  Shape shape;
  DType dtype = DType::f32;
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements: reshape() views share storage at the same offset
  // 0: contiguous. Otherwise a row view: the last axis is contiguous and row r (all other axes
  // flattened) starts at offset + r * row_stride.
  int64_t row_stride = 0;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated d(root)/d(this); kept for leaves only
  // The tape node that produced this tensor (-1: a leaf) and the tape epoch it belongs to.
  int64_t node = -1;
  uint64_t epoch = 0;
};

// A fresh, empty TensorImpl from a per-thread pool (ops use it for views).
std::shared_ptr<TensorImpl> new_impl();

// Seeded pseudo-random numbers (xoshiro256**). No global state: pass the generator you want.
// The same seed gives the same sequence on every platform and run.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0);
  uint64_t next_u64();
  double uniform();                   // [0, 1)
  double uniform(double lo, double hi);  // [lo, hi)
  double normal();                    // standard normal (Box-Muller)
  uint64_t below(uint64_t n);         // uniform integer in [0, n)
  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  // A new tensor with uninitialised values.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int rank() const { return shape().rank(); }
  int64_t size(int axis) const { return shape()[normalize_axis(axis, rank(), "size")]; }  // negative: from the end
  int64_t numel() const { return shape().numel(); }
  DType dtype() const { return impl().dtype; }

  // Typed access to the values; throws std::invalid_argument if T is not the dtype.
  template <class T> T* data() const;
  template <class T> std::span<T> span() const { return {data<T>(), size_t(numel())}; }
  void* raw() const {
    if (impl().row_stride) throw_strided();
    return raw_rows();
  }
  // Row views: the first element, and the distance between rows (the last extent when contiguous).
  bool contiguous() const { return impl().row_stride == 0; }
  void* raw_rows() const { return static_cast<char*>(impl().storage->data) + impl().offset * dtype_size(dtype()); }
  int64_t row_stride() const { return contiguous() ? (rank() ? shape()[rank() - 1] : 1) : impl().row_stride; }
  double item() const;                 // the single value of a one-element tensor
  double at(std::span<const int64_t> index) const;
  std::vector<double> to_vector() const;

  // Autograd.
  bool requires_grad() const { return impl().requires_grad; }
  // Marks a leaf as a parameter: backward() accumulates into its grad().
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return impl().node < 0; }
  Tensor grad() const;  // undefined until a backward() reaches this tensor
  void zero_grad();     // drops the accumulated gradient
  void set_grad(const Tensor& g);
  // Reverse-mode sweep over the tape from this tensor. A scalar seeds with 1; otherwise pass
  // `seed` of the same shape. The tape is freed afterwards unless retain_graph is set.
  void backward(bool retain_graph = false) const;
  void backward(const Tensor& seed, bool retain_graph = false) const;
  Tensor detach() const;  // same values (shared), no history, no grad
  Tensor clone() const;   // a contiguous copy of the values, no history
  Tensor to(DType dtype) const;  // a converted copy, no history
  // Overwrites the values (not recorded): the optimizers' and loaders' way in.
  void copy_(const Tensor& src);
  void fill_(double value);

  // Sugar for the free functions in ops.h.
  Tensor reshape(const Shape& shape) const;
  Tensor t() const;  // transpose of the last two axes
  Tensor transpose(int a, int b) const;
  Tensor select(int axis, int64_t index) const;
  Tensor slice(int axis, int64_t start, int64_t end) const;
  Tensor sum() const;
  Tensor sum(int axis, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(int axis, bool keepdim = false) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor tanh() const;
  Tensor sigmoid() const;
  Tensor relu() const;
  Tensor pow(double p) const;

  TensorImpl& impl() const {
    if (!impl_) throw std::logic_error("seqgrad: use of an undefined Tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  [[noreturn]] void throw_strided() const;
  std::shared_ptr<TensorImpl> impl_;
};

namespace detail {
// A view of rows of base's storage: shape `shape`, its last axis contiguous, row r at element
// offset + r * row_stride (row_stride == shape's last extent gives a plain contiguous view). No
// history; writes through it land in base.
Tensor row_view(const Tensor& base, int64_t offset, const Shape& shape, int64_t row_stride);
}  // namespace detail

// Construction. dtype defaults to float32.
Tensor zeros(const Shape& shape, DType dtype = DType::f32);
Tensor ones(const Shape& shape, DType dtype = DType::f32);
Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
Tensor zeros_like(const Tensor& t);
Tensor from_vector(std::span<const double> values, const Shape& shape, DType dtype = DType::f32);
Tensor from_vector(std::span<const float> values, const Shape& shape);
Tensor tensor(std::initializer_list<double> values, const Shape& shape, DType dtype = DType::f32);
Tensor tensor(std::initializer_list<double> values, DType dtype = DType::f32);  // 1-D
Tensor arange(int64_t n, DType dtype = DType::f32);                            // 0, 1, ..., n-1
Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype = DType::f32);
Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, DType dtype = DType::f32);

// Element-wise comparison within atol + rtol * |b|; shapes must match.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);

}  // namespace seqgrad

// PyTorch-like repr: tensor([[1.0000, 2.0000]], shape=(1, 2), dtype=float32, requires_grad=True).
template <>
struct fmt::formatter<seqgrad::Tensor> : fmt::formatter<std::string_view> {
  auto format(const seqgrad::Tensor& t, format_context& ctx) const -> decltype(ctx.out());
};
