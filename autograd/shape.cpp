#include "autograd/shape.h"

#include <stdexcept>

namespace seqgrad {

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::span<const int64_t>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const int64_t> dims) {
  if (dims.size() > size_t(kMaxRank))
    throw std::invalid_argument(fmt::format("Shape: rank {} exceeds the maximum {}", dims.size(), kMaxRank));
  for (int64_t d : dims) push_back(d);
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

void Shape::push_back(int64_t d) {
  if (rank_ == kMaxRank)
    throw std::invalid_argument(fmt::format("Shape: rank would exceed the maximum {}", kMaxRank));
  // -1 is allowed as reshape's "infer this extent"; tensors themselves reject it.
  if (d < -1) throw std::invalid_argument(fmt::format("Shape: negative extent {}", d));
  dims_[rank_++] = d;
}

Shape Shape::insert(int axis, int64_t d) const {
  Shape s;
  for (int i = 0; i < axis; ++i) s.push_back(dims_[i]);
  s.push_back(d);
  for (int i = axis; i < rank_; ++i) s.push_back(dims_[i]);
  return s;
}

Shape Shape::erase(int axis) const {
  Shape s;
  for (int i = 0; i < rank_; ++i)
    if (i != axis) s.push_back(dims_[i]);
  return s;
}

int64_t Shape::stride(int axis) const {
  int64_t s = 1;
  for (int i = axis + 1; i < rank_; ++i) s *= dims_[i];
  return s;
}

void throw_bad_axis(int axis, int rank, const char* op) {
  throw std::invalid_argument(fmt::format("{}: axis {} is out of range for a tensor of rank {}", op, axis, rank));
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  int r = std::max(a.rank(), b.rank());
  Shape out;
  for (int i = 0; i < r; ++i) {
    int ia = i - (r - a.rank()), ib = i - (r - b.rank());
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      throw std::invalid_argument(fmt::format("{}: shapes {} and {} cannot be broadcast together", op, a, b));
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

}  // namespace seqgrad
