#include "autograd/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numbers>
#include <unordered_map>

#include "autograd/debug.h"
#include "autograd/kernels/elementwise.h"
#include "autograd/ops.h"
#include "autograd/memory.h"
#include "autograd/tape.h"

namespace seqgrad {

std::shared_ptr<TensorImpl> new_impl() { return std::allocate_shared<TensorImpl>(detail::Recycler<TensorImpl>{}); }

namespace {
size_t padded_size(size_t n) { return std::max<size_t>(64, (n + 63) / 64 * 64); }
}  // namespace

Storage::Storage(size_t n) : data(detail::buffer_get(padded_size(n))), bytes(n) {}
Storage::~Storage() { detail::buffer_put(data, padded_size(bytes)); }

void release_cached_memory() { detail::buffer_release(); }

// ---- Generator: xoshiro256** seeded through splitmix64, as its authors recommend.
Generator::Generator(uint64_t seed) {
  for (auto& s : s_) {
    seed += 0x9e3779b97f4a7c15ULL;
    uint64_t z = seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    s = z ^ (z >> 31);
  }
}

uint64_t Generator::next_u64() {
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  uint64_t result = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Generator::uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
double Generator::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
double Generator::normal() {
  // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
  double u = 1.0 - uniform(), v = uniform();
  return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * std::numbers::pi * v);
}
uint64_t Generator::below(uint64_t n) {
  // Rejection keeps every value equally likely.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % n;
}

// ---- Tensor
Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument(fmt::format("empty: shape {} has a negative extent", shape));
  auto impl = new_impl();
  impl->shape = shape;
  impl->dtype = dtype;
  const size_t bytes = size_t(shape.numel()) * dtype_size(dtype);
  if (detail::g_debug & detail::kProfile) [[unlikely]]
    detail::g_alloc_bytes += int64_t(bytes);
  impl->storage = std::allocate_shared<Storage>(detail::Recycler<Storage>{}, bytes);
  return Tensor(std::move(impl));
}

template <class T>
T* Tensor::data() const {
  if (dtype() != dtype_of<T>())
    throw std::invalid_argument(
        fmt::format("data: tensor of shape {} is {}, not {}", shape(), dtype(), dtype_name(dtype_of<T>())));
  return static_cast<T*>(raw());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;

double Tensor::item() const {
  if (numel() != 1) throw std::invalid_argument(fmt::format("item: tensor of shape {} has {} elements, not 1", shape(), numel()));
  return dtype() == DType::f32 ? double(*data<float>()) : *data<double>();
}

double Tensor::at(std::span<const int64_t> index) const {
  if (int(index.size()) != rank())
    throw std::invalid_argument(fmt::format("at: {} indices for a tensor of shape {}", index.size(), shape()));
  int64_t off = 0;
  for (int i = 0; i < rank(); ++i) {
    if (index[i] < 0 || index[i] >= shape()[i])
      throw std::invalid_argument(fmt::format("at: index {} out of range for axis {} of shape {}", index[i], i, shape()));
    off = off * shape()[i] + index[i];
  }
  return dtype() == DType::f32 ? double(data<float>()[off]) : data<double>()[off];
}

std::vector<double> Tensor::to_vector() const {
  std::vector<double> v(numel());
  if (dtype() == DType::f32)
    std::copy_n(data<float>(), numel(), v.begin());
  else
    std::copy_n(data<double>(), numel(), v.begin());
  return v;
}

Tensor& Tensor::requires_grad_(bool on) {
  if (!is_leaf())
    throw std::invalid_argument("requires_grad_: only leaf tensors can be marked; use detach() first");
  impl().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return Tensor(impl().grad); }
void Tensor::zero_grad() { impl().grad.reset(); }
void Tensor::set_grad(const Tensor& g) {
  if (g.defined() && (g.shape() != shape() || g.dtype() != dtype()))
    throw std::invalid_argument(fmt::format("set_grad: gradient is {} {} but the tensor is {} {}", g.shape(), g.dtype(),
                                            shape(), dtype()));
  impl().grad = g.impl_ptr();
}

void Tensor::backward(bool retain_graph) const {
  if (numel() != 1)
    throw std::invalid_argument(fmt::format(
        "backward: the tensor has shape {}; only a one-element tensor can seed itself, pass a seed gradient", shape()));
  backward(ones(shape(), dtype()), retain_graph);
}

void Tensor::backward(const Tensor& seed, bool retain_graph) const {
  Tape::current().backward(*this, seed, retain_graph);
}

Tensor Tensor::detach() const {
  auto impl = new_impl();
  impl->shape = shape();
  impl->dtype = dtype();
  impl->storage = this->impl().storage;
  impl->offset = this->impl().offset;
  impl->row_stride = this->impl().row_stride;
  return Tensor(std::move(impl));
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype());
  const size_t elem = dtype_size(dtype());
  const int64_t cols = rank() ? shape()[rank() - 1] : 1, rows = cols ? numel() / cols : 0;
  for (int64_t r = 0; r < (contiguous() ? 1 : rows); ++r)  // one block, or row by row
    std::memcpy(static_cast<char*>(out.raw()) + r * cols * elem,
                static_cast<const char*>(raw_rows()) + r * row_stride() * elem,
                size_t(contiguous() ? numel() : cols) * elem);
  return out;
}

void Tensor::throw_strided() const {
  throw std::invalid_argument(fmt::format(
      "a strided row view {} reached an op that needs contiguous values; clone() it first", shape()));
}

Tensor detail::row_view(const Tensor& base, int64_t offset, const Shape& shape, int64_t row_stride) {
  const int64_t cols = shape.rank() ? shape[shape.rank() - 1] : 1, rows = cols ? shape.numel() / cols : 0;
  const int64_t last = base.impl().offset + offset + (rows ? (rows - 1) * row_stride + cols : 0);
  if (offset < 0 || row_stride < cols || last * int64_t(dtype_size(base.dtype())) > int64_t(base.impl().storage->bytes))
    throw std::invalid_argument(fmt::format("row_view: rows of {} at offset {} with row stride {} run outside a {} {}",
                                            shape, offset, row_stride, base.shape(), base.dtype()));
  auto impl = new_impl();
  impl->shape = shape;
  impl->dtype = base.dtype();
  impl->storage = base.impl().storage;
  impl->offset = base.impl().offset + offset;
  impl->row_stride = row_stride == cols ? 0 : row_stride;
  return Tensor(std::move(impl));
}

Tensor Tensor::to(DType d) const {
  if (d == dtype()) return clone();
  Tensor out = empty(shape(), d);
  if (d == DType::f64)
    std::copy_n(data<float>(), numel(), out.data<double>());
  else
    std::copy_n(data<double>(), numel(), out.data<float>());
  return out;
}

void Tensor::copy_(const Tensor& src) {
  if (src.shape() != shape())
    throw std::invalid_argument(fmt::format("copy_: source shape {} differs from destination {}", src.shape(), shape()));
  if (src.dtype() == dtype())
    std::memmove(raw(), src.raw(), size_t(numel()) * dtype_size(dtype()));
  else if (dtype() == DType::f32)
    std::copy_n(src.data<double>(), numel(), data<float>());
  else
    std::copy_n(src.data<float>(), numel(), data<double>());
}

void Tensor::fill_(double value) {
  if (dtype() == DType::f32)
    kernels::fill(data<float>(), float(value), numel());
  else
    kernels::fill(data<double>(), value, numel());
}

Tensor Tensor::reshape(const Shape& s) const { return seqgrad::reshape(*this, s); }
Tensor Tensor::t() const { return seqgrad::transpose(*this, -2, -1); }
Tensor Tensor::transpose(int a, int b) const { return seqgrad::transpose(*this, a, b); }
Tensor Tensor::select(int axis, int64_t index) const { return seqgrad::select(*this, axis, index); }
Tensor Tensor::slice(int axis, int64_t start, int64_t end) const { return seqgrad::slice(*this, axis, start, end); }
Tensor Tensor::sum() const { return seqgrad::sum(*this); }
Tensor Tensor::sum(int axis, bool keepdim) const { return seqgrad::sum(*this, axis, keepdim); }
Tensor Tensor::mean() const { return seqgrad::mean(*this); }
Tensor Tensor::mean(int axis, bool keepdim) const { return seqgrad::mean(*this, axis, keepdim); }
Tensor Tensor::exp() const { return seqgrad::exp(*this); }
Tensor Tensor::log() const { return seqgrad::log(*this); }
Tensor Tensor::tanh() const { return seqgrad::tanh(*this); }
Tensor Tensor::sigmoid() const { return seqgrad::sigmoid(*this); }
Tensor Tensor::relu() const { return seqgrad::relu(*this); }
Tensor Tensor::pow(double p) const { return seqgrad::pow(*this, p); }

// ---- construction
Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  t.fill_(value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype()); }

namespace {
template <class Src>
Tensor from_values(std::span<const Src> values, const Shape& shape, DType dtype) {
  if (int64_t(values.size()) != shape.numel())
    throw std::invalid_argument(
        fmt::format("from_vector: {} values cannot fill shape {} ({} elements)", values.size(), shape, shape.numel()));
  Tensor t = Tensor::empty(shape, dtype);
  if (dtype == DType::f32)
    std::copy(values.begin(), values.end(), t.data<float>());
  else
    std::copy(values.begin(), values.end(), t.data<double>());
  return t;
}

template <class F>
Tensor generate(const Shape& shape, DType dtype, F&& next) {
  Tensor t = Tensor::empty(shape, dtype);
  int64_t n = t.numel();
  if (dtype == DType::f32) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = float(next());
  } else {
    double* p = t.data<double>();
    for (int64_t i = 0; i < n; ++i) p[i] = next();
  }
  return t;
}
}  // namespace

Tensor from_vector(std::span<const double> values, const Shape& shape, DType dtype) {
  return from_values(values, shape, dtype);
}
Tensor from_vector(std::span<const float> values, const Shape& shape) { return from_values(values, shape, DType::f32); }
Tensor tensor(std::initializer_list<double> values, const Shape& shape, DType dtype) {
  return from_values(std::span<const double>(values.begin(), values.size()), shape, dtype);
}
Tensor tensor(std::initializer_list<double> values, DType dtype) {
  return tensor(values, Shape{int64_t(values.size())}, dtype);
}
Tensor arange(int64_t n, DType dtype) {
  int64_t i = 0;
  return generate(Shape{n}, dtype, [&] { return double(i++); });
}
Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype) {
  if (!(lo <= hi)) throw std::invalid_argument(fmt::format("uniform: lo {} must not exceed hi {}", lo, hi));
  return generate(shape, dtype, [&] { return gen.uniform(lo, hi); });
}
Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, DType dtype) {
  if (!(stddev >= 0)) throw std::invalid_argument(fmt::format("normal: stddev {} must be >= 0", stddev));
  return generate(shape, dtype, [&] { return mean + stddev * gen.normal(); });
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  if (a.shape() != b.shape())
    throw std::invalid_argument(fmt::format("allclose: shapes {} and {} differ", a.shape(), b.shape()));
  auto va = a.to_vector(), vb = b.to_vector();
  for (size_t i = 0; i < va.size(); ++i)
    if (!(std::abs(va[i] - vb[i]) <= atol + rtol * std::abs(vb[i]))) return false;
  return true;
}

}  // namespace seqgrad

namespace {
// Nested brackets like PyTorch; long axes show their first and last three entries.
void format_values(std::string& out, const std::vector<double>& v, const seqgrad::Shape& s, int axis, int64_t base,
                   bool summarize) {
  if (s.rank() == 0) {
    out += fmt::format("{:.4f}", v[0]);
    return;
  }
  int64_t n = s[axis], stride = s.stride(axis);
  out += '[';
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 6 && i == 3) {
      out += "..., ";
      i = n - 3;
    }
    if (axis + 1 == s.rank())
      out += fmt::format("{:.4f}", v[base + i]);
    else
      format_values(out, v, s, axis + 1, base + i * stride, summarize);
    if (i + 1 < n) out += axis + 1 == s.rank() ? ", " : ",\n" + std::string(axis + 8, ' ');
  }
  out += ']';
}
}  // namespace

auto fmt::formatter<seqgrad::Tensor>::format(const seqgrad::Tensor& t, format_context& ctx) const
    -> decltype(ctx.out()) {
  if (!t.defined()) return fmt::formatter<std::string_view>::format("tensor(undefined)", ctx);
  std::string out = "tensor(";
  format_values(out, t.to_vector(), t.shape(), 0, 0, t.numel() > 1000);
  out += fmt::format(", shape={}, dtype={}{})", t.shape(), t.dtype(), t.requires_grad() ? ", requires_grad=True" : "");
  return fmt::formatter<std::string_view>::format(out, ctx);
}
